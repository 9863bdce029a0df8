/**
 * The BERT family on the GPU model (config `model_type: "bert"`) against the float64 reference: positions from 0,
 * token types on sentence pairs, the frozen pooler feeding the trainable classifier, checkpoint keys without the
 * `bert.` prefix (as `BertModel.save_pretrained` writes them), masks, regression, the adapter's peft names, a
 * missing pooler. The RoBERTa-specific cases live in model_roberta.gpu.test.ts.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { RobertaModel } from "../model/roberta.ts";
import { type EncoderConfigLike, randomBase, refForward, refLossAndGrads } from "../model/reference.ts";
import { baseLayout, type LoraSettings } from "../model/names.ts";
import { SafetensorsFile, writeSafetensors } from "../model/safetensors.ts";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import { assertClose } from "./util.ts";
import { hfConfig, randomAdapter, randomMasks } from "./model_fixture.ts";

const CFG: EncoderConfigLike = {
  modelType: "bert",
  hiddenSize: 16,
  numLayers: 2,
  numHeads: 2,
  intermediateSize: 24,
  layerNormEps: 1e-12,
  padTokenId: 0,
  vocabSize: 60,
  maxPositionEmbeddings: 12,
  typeVocabSize: 2,
};

const NO_DROPOUT = { hidden: 0, attention: 0, lora: 0 };

/** A tiny random BERT folder; `prefixed` false writes the names as BertModel does (no `bert.`). */
async function tinyBert(
  seed: number,
  opts: { prefixed?: boolean; drop?: string } = {},
): Promise<{ dir: string; base: Map<string, Float64Array> }> {
  const dir = await Deno.makeTempDir({ prefix: "fedlodrop-bert-" });
  const base = randomBase(CFG, seed);
  const shapes = new Map(baseLayout(CFG).map((t) => [t.name, t.shape]));
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, data] of base) {
    if (name === opts.drop) continue;
    const key = opts.prefixed ? name : name.replace(/^bert\./, "");
    tensors.set(key, { shape: shapes.get(name)!, data: Float32Array.from(data) });
  }
  await writeSafetensors(`${dir}/model.safetensors`, tensors);
  const cfg = hfConfig(CFG, { model_type: "bert", architectures: ["BertModel"], bos_token_id: undefined });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(cfg));
  return { dir, base };
}

/** `[CLS] a… [SEP] b… [SEP] [PAD]…` rows with their token types (1 on the second segment). */
function pairBatch(lengths: [number, number][], seqLen: number, seed: number) {
  const r = new KeyedRandom([seed, Purpose.test, 31]);
  const ids = new Int32Array(lengths.length * seqLen), types = new Int32Array(lengths.length * seqLen);
  lengths.forEach(([la, lb], b) => {
    const row: number[] = [1];
    for (let i = 0; i < la; i++) row.push(4 + r.int(CFG.vocabSize - 4));
    row.push(2);
    const typeRow = row.map(() => 0);
    for (let i = 0; i < lb; i++) {
      row.push(4 + r.int(CFG.vocabSize - 4));
      typeRow.push(1);
    }
    if (lb > 0) {
      row.push(2);
      typeRow.push(1);
    }
    ids.set(row, b * seqLen);
    types.set(typeRow, b * seqLen);
  });
  return { inputIds: ids, typeIds: types, batch: lengths.length, seqLen };
}

const CASES: {
  name: string;
  numLabels: number;
  lora: LoraSettings;
  lengths: [number, number][];
  seqLen: number;
}[] = [
  {
    name: "pairs, all targets r3, 3 labels, padded",
    numLabels: 3,
    lora: {
      r: 3,
      alpha: 6,
      targets: ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    },
    lengths: [[3, 4], [2, 0], [4, 2]],
    seqLen: 10,
  },
  {
    name: "regression rsLoRA on q,v, pairs",
    numLabels: 1,
    lora: { r: 2, alpha: 4, targets: ["value", "query"], rslora: true },
    lengths: [[2, 3], [5, 1]],
    seqLen: 9,
  },
  {
    // 17 × 16 × 16 >= TEXTURE_GEMM_MIN_WORK: on CPU adapters the frozen pooler's products (forward and dX) take
    // the texture GEMM with its packed weight.
    name: "17 pairs, the pooler on the texture GEMM",
    numLabels: 2,
    lora: { r: 2, alpha: 4, targets: ["query", "value"] },
    lengths: Array.from({ length: 17 }, (_, i) => [1 + (i % 4), i % 3] as [number, number]),
    seqLen: 8,
  },
];

for (const c of CASES) {
  Deno.test(`model (BERT): GPU logits and gradients equal the float64 reference (${c.name})`, async () => {
    const { dir, base } = await tinyBert(1);
    try {
      const model = await RobertaModel.load(dir, {
        numLabels: c.numLabels,
        lora: c.lora,
        seed: 5,
        dropout: NO_DROPOUT,
      });
      strictEqual(model.modules[0].path, `bert.encoder.layer.0.attention.self.${model.lora.targets[0]}`);
      const adapter = randomAdapter(model, 3);
      model.setAdapter(adapter);
      const masks = randomMasks(model, 4);
      const input = pairBatch(c.lengths, c.seqLen, 2);
      const labels = c.numLabels === 1
        ? c.lengths.map((_, i) => 0.5 + i)
        : c.lengths.map((_, i) => i % c.numLabels);
      const ref = { cfg: CFG, numLabels: c.numLabels, lora: model.lora, base, adapter };
      for (const m of [undefined, masks]) {
        const what = m ? "masked" : "unmasked";
        model.setMasks(m);
        const logits = await model.forward(input);
        // fp32 through 2 layers of LayerNorm/softmax: measured ~1e-6; bound 2e-5.
        assertClose(logits, refForward(ref, input, m).logits, 2e-5, `${what} logits`);
        const got = await model.lossAndGrads({ ...input, labels }, { masks: m });
        const r = refLossAndGrads(ref, { ...input, labels }, m);
        ok(
          Math.abs(got.loss - r.loss) <= 2e-5 * Math.max(1, Math.abs(r.loss)),
          `${what} loss ${got.loss} vs ${r.loss}`,
        );
        deepStrictEqual([...got.grads.keys()].sort(), [...r.grads.keys()].sort());
        for (const [name, g] of r.grads) {
          assertClose(got.grads.get(name)!, g, 1e-4, `${what} gradient ${name}`);
        }
      }
      // Token types reach the GPU model: all-zero types give other logits (and the reference agrees).
      model.setMasks(undefined);
      const zero = { ...input, typeIds: new Int32Array(input.typeIds.length) };
      const z = await model.forward(zero);
      assertClose(z, refForward(ref, zero).logits, 2e-5, "logits with all-zero token types");
      ok(
        Math.max(...z.map((v, i) => Math.abs(v - refForward(ref, input).logits[i]))) > 1e-4,
        "types ignored",
      );
      // typeIds left out of a later batch are zeros again, not the previous batch's.
      const noTypes = await model.forward({
        inputIds: input.inputIds,
        batch: input.batch,
        seqLen: input.seqLen,
      });
      deepStrictEqual(noTypes, z);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("model (BERT): the adapter is LoRA plus the classifier (peft names), the pooler stays frozen", async () => {
  const { dir, base } = await tinyBert(2, { prefixed: true });
  try {
    const lora: LoraSettings = { r: 2, alpha: 4, targets: ["query", "value"] };
    const model = await RobertaModel.load(dir, { numLabels: 2, lora, seed: 1 });
    const shapes = model.adapterShapes;
    deepStrictEqual(shapes.get("base_model.model.classifier.weight"), [2, 16]);
    deepStrictEqual(shapes.get("base_model.model.classifier.bias"), [2]);
    ok(shapes.has("base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight"));
    strictEqual([...shapes.keys()].filter((n) => n.includes("dense")).length, 0);
    const input = { ...pairBatch([[3, 2], [4, 3]], 10, 5), labels: [1, 0] };
    for (let s = 1; s <= 3; s++) await model.trainStep(input, { lr: 1e-2, step: s, dropoutStream: s });
    // The frozen pooler is unchanged by training: logits equal the reference with the original pooler.
    model.setMasks(undefined);
    const ref = { cfg: CFG, numLabels: 2, lora: model.lora, base, adapter: await model.getAdapter() };
    assertClose(await model.forward(input), refForward(ref, input).logits, 2e-5, "logits after training");
    const out = await Deno.makeTempDir({ prefix: "fedlodrop-bert-adapter-" });
    try {
      await model.saveAdapter(out);
      const f = await SafetensorsFile.open(`${out}/adapter_model.safetensors`);
      try {
        deepStrictEqual([...f.tensors.keys()].sort(), [...shapes.keys()].sort());
      } finally {
        f.close();
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model (BERT): a missing pooler or an out-of-range token type is an error naming it", async () => {
  const lora: LoraSettings = { r: 2, alpha: 4, targets: ["query", "value"] };
  const miss = await tinyBert(1, { drop: "bert.pooler.dense.weight" });
  const ok1 = await tinyBert(1);
  try {
    await rejects(
      () => RobertaModel.load(miss.dir, { numLabels: 2, lora }),
      /bert\.pooler\.dense\.weight.*missing/,
    );
    const model = await RobertaModel.load(ok1.dir, { numLabels: 2, lora });
    const input = pairBatch([[2, 2]], 7, 1);
    await rejects(
      () => model.forward({ ...input, typeIds: new Int32Array(7).fill(2) }),
      /typeIds\[0\] = 2 is outside \[0, type_vocab_size 2\)/,
    );
    await rejects(
      () => model.forward({ inputIds: new Int32Array(13).fill(5), batch: 1, seqLen: 13 }),
      /seqLen 13 exceeds the model's 12 positions \(max_position_embeddings\)/,
    );
  } finally {
    await Deno.remove(miss.dir, { recursive: true });
    await Deno.remove(ok1.dir, { recursive: true });
  }
});

Deno.test("model (BERT): training-mode dropout acts after the pooler only (none on [CLS] before it)", async () => {
  const { dir } = await tinyBert(4, { prefixed: true });
  try {
    // Only the classifier's dropout is on (p = 0.5, scale 2), as BertForSequenceClassification applies it.
    const cfg = hfConfig(CFG, {
      model_type: "bert",
      architectures: ["BertModel"],
      hidden_dropout_prob: 0,
      attention_probs_dropout_prob: 0,
      classifier_dropout: 0.5,
    });
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(cfg));
    const lora: LoraSettings = { r: 2, alpha: 4, targets: ["query", "value"] };
    const model = await RobertaModel.load(dir, { numLabels: 1, lora, seed: 3 });
    strictEqual(model.rates.classifier, 0.5);
    // The classifier reads pooled unit j alone: the eval logit is pooled[j], and a training-mode logit is 0 (unit
    // dropped) or exactly 2·pooled[j] (kept) when nothing is dropped before the pooler. Dropout on [CLS] before
    // the pooler would change pooled[j] itself.
    const j = 5;
    const adapter = randomAdapter(model, 4);
    adapter.set(
      "base_model.model.classifier.weight",
      Float32Array.from({ length: 16 }, (_, i) => i === j ? 1 : 0),
    );
    adapter.set("base_model.model.classifier.bias", new Float32Array(1));
    model.setAdapter(adapter);
    const input = pairBatch([[3, 2], [4, 3], [2, 0]], 10, 6);
    const pooled = await model.forward(input);
    ok(pooled.every((v) => v !== 0 && Number.isFinite(v)), `eval logits ${pooled}`);
    const seen = new Set<string>();
    for (let s = 1; s <= 12; s++) {
      const got = await model.forward(input, { train: true, dropoutStream: s });
      got.forEach((v, b) => {
        ok(v === 0 || v === 2 * pooled[b], `stream ${s}, row ${b}: ${v} is neither 0 nor 2 × ${pooled[b]}`);
        seen.add(v === 0 ? "dropped" : "kept");
      });
    }
    strictEqual(seen.size, 2, "both dropped and kept units occur over 12 streams × 3 rows");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
