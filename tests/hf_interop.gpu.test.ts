/**
 * Interoperability with Hugging Face itself (skipped with a message when no python imports torch, transformers and
 * peft; `deno task setup-python` creates one): random tiny `BertForSequenceClassification` (sentence pairs with
 * token types, and a regression head) and `RobertaForSequenceClassification` built and saved by transformers
 * (tests/python/hf_tiny_models.py) are loaded by `RobertaModel.load`, whose logits must equal transformers' to
 * 1e-5 relative; an adapter set here and exported with `saveAdapter` is loaded by peft's
 * `PeftModel.from_pretrained` and must give the same logits; a `BertModel`-only checkpoint (no `bert.` prefix,
 * no classifier) loads with a fresh head.
 *
 * Error bound: both sides compute in fp32 from identical fp32 weights and inputs through 2 layers of H = 32; they
 * differ only in summation order and in the erf/tanh/exp implementations (a few ulp each), so relative errors
 * of ~1e-6 are expected and 1e-5 (relative to the largest logit) leaves a margin of about 10×.
 */
import { randomAdapter } from "./model_fixture.ts";
import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import { headLayout, type LoraSettings } from "../model/names.ts";
import { type ModelInput, RobertaModel } from "../model/roberta.ts";
import { SafetensorsFile } from "../model/safetensors.ts";
import { findHfPython, hfSkipMessage, PYTHON_SCRIPTS_DIR, runHfPython } from "./hf_python.ts";
import { assertClose, relErr } from "./util.ts";

const PYTHON = await findHfPython();
if (!PYTHON) console.log(hfSkipMessage("hf_interop"));

const SCRIPT = `${PYTHON_SCRIPTS_DIR}hf_tiny_models.py`;
/** Must agree with TINY in hf_tiny_models.py. */
const VOCAB = 99, HIDDEN = 32, LAYERS = 2;
/** See the module comment for the reason of this bound. */
const TOL = 1e-5;
const NO_DROPOUT = { hidden: 0, attention: 0, lora: 0 };

type Family = "bert" | "roberta";

/** A batch as our model takes it plus the attention mask transformers takes. */
interface Batch extends ModelInput {
  mask: Int32Array;
}

/**
 * Rows `[CLS] a… [SEP] b… [SEP] [PAD]…` (BERT: CLS 2, SEP 3, PAD 0, token types 1 on the second segment) or
 * `<s> a… </s></s> b… </s> <pad>…` (RoBERTa: <s> 0, </s> 2, <pad> 1, token types all 0); `lengths` are the
 * lengths of a and b (b = 0: a single sentence); word ids are random, never a special id.
 */
function pairBatch(family: Family, lengths: [number, number][], seqLen: number, seed: number): Batch {
  const bert = family === "bert";
  const [cls, sep, pad, firstWord] = bert ? [2, 3, 0, 4] : [0, 2, 1, 3];
  const r = new KeyedRandom([seed, Purpose.test, 0x41]);
  const word = () => firstWord + r.int(VOCAB - firstWord);
  const B = lengths.length;
  const inputIds = new Int32Array(B * seqLen).fill(pad), typeIds = new Int32Array(B * seqLen);
  lengths.forEach(([la, lb], b) => {
    const row = [cls, ...Array.from({ length: la }, word), sep];
    const types = row.map(() => 0);
    if (lb > 0) {
      const second = [...(bert ? [] : [sep]), ...Array.from({ length: lb }, word), sep];
      row.push(...second);
      types.push(...second.map(() => (bert ? 1 : 0)));
    }
    if (row.length > seqLen) throw new Error(`row ${b} has ${row.length} tokens, more than seqLen ${seqLen}`);
    inputIds.set(row, b * seqLen);
    typeIds.set(types, b * seqLen);
  });
  const mask = inputIds.map((id) => (id !== pad ? 1 : 0));
  return { inputIds, typeIds: bert ? typeIds : undefined, mask, batch: B, seqLen };
}

function pyInput(b: Batch) {
  return {
    ids: [...b.inputIds],
    types: b.typeIds ? [...b.typeIds] : null,
    mask: [...b.mask],
    batch: b.batch,
    seqLen: b.seqLen,
  };
}

interface Case {
  name: string;
  family: Family;
  numLabels: number;
  seed: number;
  input: Batch;
  /** The adapter of the peft round trip. */
  lora: LoraSettings;
}

const CASES: Case[] = [
  {
    name: "bert, 3 labels, sentence pairs with token types, padded; adapter on all six targets",
    family: "bert",
    numLabels: 3,
    seed: 1,
    input: pairBatch("bert", [[4, 3], [2, 0], [6, 4], [1, 1]], 13, 1),
    lora: {
      r: 3,
      alpha: 6,
      targets: ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    },
  },
  {
    name: "bert, regression (1 output), pairs; rsLoRA adapter on query and value",
    family: "bert",
    numLabels: 1,
    seed: 2,
    input: pairBatch("bert", [[2, 2], [5, 0], [1, 2]], 7, 2),
    lora: { r: 2, alpha: 4, targets: ["query", "value"], rslora: true },
  },
  {
    name: "roberta, 3 labels, the longest sequence its positions allow (38); adapter on key and intermediate",
    family: "roberta",
    numLabels: 3,
    seed: 3,
    input: pairBatch("roberta", [[17, 17], [5, 0], [3, 4]], 38, 3),
    lora: { r: 4, alpha: 8, targets: ["key", "intermediate.dense"] },
  },
];

/** The LoRA settings of the plain logit comparisons (B is zero at initialisation, so they do not matter). */
const PLAIN_LORA: LoraSettings = { r: 4, alpha: 8, targets: ["query", "value"] };

interface Built {
  logits: number[];
  classifier: Record<string, number[]>;
}

/** Our head tensors (peft names) must equal the classifier transformers saved (Hugging Face names). */
function assertHeadFromCheckpoint(
  adapter: Map<string, Float32Array>,
  c: Case,
  classifier: Record<string, number[]>,
  expectEqual: boolean,
): void {
  const layout = headLayout(c.family, HIDDEN, c.numLabels);
  deepStrictEqual(
    Object.keys(classifier).sort(),
    layout.map((t) => t.hfName).sort(),
    `${c.name}: head names`,
  );
  for (const t of layout) {
    const ours = adapter.get(t.name);
    ok(ours, `${c.name}: the adapter has no ${t.name}`);
    const theirs = Float32Array.from(classifier[t.hfName]);
    if (expectEqual) {
      deepStrictEqual(ours, theirs, `${c.name}: ${t.name} is not the checkpoint's ${t.hfName}`);
    } else notDeepStrictEqual(ours, theirs, `${c.name}: ${t.name} equals the checkpoint's ${t.hfName}`);
  }
}

Deno.test({
  name:
    "hf interop: transformers' own tiny BERT/RoBERTa checkpoints give the same logits here, and peft loads our adapters",
  ignore: PYTHON === null,
  fn: async (t) => {
    const tmp = await Deno.makeTempDir({ prefix: "fedlodrop-hf-interop-" });
    const dirOf = (c: Case) => `${tmp}/${c.name.split(",")[0]}-${c.numLabels}`;
    const bareDir = `${tmp}/bert-encoder-only`;
    const errors: string[] = [];
    try {
      const built = await runHfPython(PYTHON!, SCRIPT, ["build"], {
        cases: CASES.map((c, i) => ({
          name: c.name,
          family: c.family,
          dir: dirOf(c),
          seed: c.seed,
          numLabels: c.numLabels,
          bareDir: i === 0 ? bareDir : undefined,
          input: pyInput(c.input),
        })),
      }) as Record<string, Built>;

      const adapters = new Map<string, string>();
      const ourAdapted = new Map<string, Float32Array>();
      for (const c of CASES) {
        await t.step(`logits equal transformers': ${c.name}`, async () => {
          const hf = built[c.name];
          ok(hf, `python built no ${c.name}`);
          strictEqual(hf.logits.length, c.input.batch * c.numLabels, `${c.name}: HF logits`);
          const model = await RobertaModel.load(dirOf(c), {
            numLabels: c.numLabels,
            lora: PLAIN_LORA,
            seed: 7,
            dropout: NO_DROPOUT,
          });
          strictEqual(model.config.modelType, c.family);
          const init = await model.getAdapter();
          // the fine-tuned classifier in the checkpoint is the head's initial value; LoRA B starts at zero
          assertHeadFromCheckpoint(init, c, hf.classifier, true);
          for (const [name, v] of init) {
            if (name.endsWith("lora_B.weight")) ok(v.every((x) => x === 0), `${name} is not zero at init`);
          }
          const ours = await model.forward(c.input);
          const e = relErr(ours, hf.logits);
          errors.push(`${c.family}-${c.numLabels} logits ${e.toExponential(2)}`);
          assertClose(ours, hf.logits, TOL, `${c.name}: logits vs transformers`);

          // the adapter of the peft round trip: random and nonzero everywhere, so peft must load every tensor
          const adapted = await RobertaModel.load(dirOf(c), {
            numLabels: c.numLabels,
            lora: c.lora,
            seed: 9,
            dropout: NO_DROPOUT,
          });
          adapted.setAdapter(randomAdapter(adapted, c.seed, 0x1f));
          const logits = await adapted.forward(c.input);
          ok(relErr(logits, hf.logits) > 1e-2, `${c.name}: the random adapter hardly changes the logits`);
          const adapterDir = `${tmp}/adapter-${c.family}-${c.numLabels}`;
          await adapted.saveAdapter(adapterDir);
          adapters.set(c.name, adapterDir);
          ourAdapted.set(c.name, logits);
        });
      }

      await t.step("peft loads the adapters exported here and gives the same logits", async () => {
        const todo = CASES.filter((c) => adapters.has(c.name));
        strictEqual(todo.length, CASES.length, "an earlier step failed to export its adapter");
        const res = await runHfPython(PYTHON!, SCRIPT, ["peft"], {
          cases: todo.map((c) => ({
            name: c.name,
            dir: dirOf(c),
            adapterDir: adapters.get(c.name),
            numLabels: c.numLabels,
            input: pyInput(c.input),
          })),
        }) as Record<string, { logits: number[]; nonzeroLoraB: number }>;
        for (const c of todo) {
          const r = res[c.name];
          ok(r, `peft answered nothing for ${c.name}`);
          strictEqual(
            r.nonzeroLoraB,
            LAYERS * c.lora.targets.length,
            `${c.name}: lora_B tensors peft loaded`,
          );
          const ours = ourAdapted.get(c.name)!;
          const e = relErr(ours, r.logits);
          errors.push(`${c.family}-${c.numLabels} peft ${e.toExponential(2)}`);
          assertClose(ours, r.logits, TOL, `${c.name}: logits with our adapter vs peft`);
        }
      });

      await t.step(
        "a BertModel-only checkpoint (no bert. prefix, no classifier) loads with a fresh head",
        async () => {
          const c = CASES[0], hf = built[c.name];
          const file = await SafetensorsFile.open(`${bareDir}/model.safetensors`);
          try {
            const names = [...file.tensors.keys()];
            ok(names.includes("embeddings.word_embeddings.weight"), "expected unprefixed BertModel names");
            ok(names.includes("pooler.dense.weight"), "expected the pooler in a BertModel checkpoint");
            ok(!names.some((n) => n.startsWith("bert.") || n.startsWith("classifier")), names.join(", "));
          } finally {
            file.close();
          }
          const model = await RobertaModel.load(bareDir, {
            numLabels: c.numLabels,
            lora: PLAIN_LORA,
            seed: 7,
            dropout: NO_DROPOUT,
          });
          const head = await model.getAdapter();
          assertHeadFromCheckpoint(head, c, hf.classifier, false);
          const fresh = await model.forward(c.input);
          strictEqual(fresh.length, c.input.batch * c.numLabels);
          ok(fresh.every(Number.isFinite), `non-finite logits ${fresh}`);
          // with the full checkpoint's classifier put in, the encoder alone reproduces transformers' logits
          const classifier = new Map(
            headLayout("bert", HIDDEN, c.numLabels).map((
              h,
            ) => [h.name, Float32Array.from(hf.classifier[h.hfName])]),
          );
          model.setAdapter(classifier);
          const logits = await model.forward(c.input);
          errors.push(`bert encoder-only + classifier ${relErr(logits, hf.logits).toExponential(2)}`);
          assertClose(logits, hf.logits, TOL, "BertModel-only checkpoint + the classifier vs transformers");
        },
      );
    } finally {
      console.log(`hf_interop: max relative errors: ${errors.join("; ")}`);
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
