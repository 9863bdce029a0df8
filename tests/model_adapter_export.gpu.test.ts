/**
 * `RobertaModel.saveAdapter` writes what peft writes: `adapter_model.safetensors` with exactly peft's tensor
 * names, shapes and the adapter's values (F32, "pt" metadata), and `adapter_config.json` with the LoRA fields
 * peft reads; `target_modules` selects exactly the adapted `nn.Linear`s under peft's matching rules. When
 * python with peft, transformers and torch is available, the adapter is also loaded with peft and its logits
 * compared with ours; otherwise that test is skipped with a message.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import { saveAdapter } from "../model/adapter_export.ts";
import type { LoraSettings, LoraTarget } from "../model/names.ts";
import type { EncoderConfigLike } from "../model/reference.ts";
import { RobertaModel } from "../model/roberta.ts";
import { readSafetensors, SafetensorsFile } from "../model/safetensors.ts";
import { assertClose } from "./util.ts";
import { findHfPython, hfSkipMessage } from "./hf_python.ts";
import { randomAdapter, writeTinyModel } from "./model_fixture.ts";

const CFG: EncoderConfigLike = {
  hiddenSize: 12,
  numLayers: 2,
  numHeads: 3,
  intermediateSize: 20,
  layerNormEps: 1e-5,
  padTokenId: 1,
  vocabSize: 50,
  maxPositionEmbeddings: 40,
  typeVocabSize: 1,
};

/** Module path (relative to the peft base model) of a target, written out independently of model/names.ts. */
const SUFFIX: Record<LoraTarget, string> = {
  query: "attention.self.query",
  key: "attention.self.key",
  value: "attention.self.value",
  "attention.output.dense": "attention.output.dense",
  "intermediate.dense": "intermediate.dense",
  "output.dense": "output.dense",
};

/** peft's expected tensor names and shapes for this config, in no particular order. */
function expectedTensors(lora: LoraSettings, numLabels: number): Map<string, number[]> {
  const H = CFG.hiddenSize, I = CFG.intermediateSize, r = lora.r;
  const out = new Map<string, number[]>();
  for (let i = 0; i < CFG.numLayers; i++) {
    for (const t of lora.targets) {
      const nIn = t === "output.dense" ? I : H;
      const nOut = t === "intermediate.dense" ? I : H;
      const p = `base_model.model.roberta.encoder.layer.${i}.${SUFFIX[t]}`;
      out.set(`${p}.lora_A.weight`, [r, nIn]);
      out.set(`${p}.lora_B.weight`, [nOut, r]);
    }
  }
  out.set("base_model.model.classifier.dense.weight", [H, H]);
  out.set("base_model.model.classifier.dense.bias", [H]);
  out.set("base_model.model.classifier.out_proj.weight", [numLabels, H]);
  out.set("base_model.model.classifier.out_proj.bias", [numLabels]);
  return out;
}

/** Every `nn.Linear` module name of RobertaForSequenceClassification (what peft's matcher is run against). */
function linearModuleNames(): string[] {
  const out: string[] = [];
  for (let i = 0; i < CFG.numLayers; i++) {
    for (const s of Object.values(SUFFIX)) out.push(`roberta.encoder.layer.${i}.${s}`);
  }
  out.push("classifier.dense", "classifier.out_proj");
  return out;
}

/**
 * peft's `check_target_module_exists` for the cases we emit: a string is a full-match regex; a list matches a
 * module whose name equals an entry or ends with "." + entry.
 */
function peftMatches(targetModules: unknown, key: string): boolean {
  if (typeof targetModules === "string") return new RegExp(`^(?:${targetModules})$`).test(key);
  ok(Array.isArray(targetModules), `target_modules must be a string or a list, got ${typeof targetModules}`);
  return (targetModules as string[]).some((t) => key === t || key.endsWith(`.${t}`));
}

interface Case {
  name: string;
  numLabels: number;
  lora: LoraSettings;
  /** The exact target_modules value expected (list or regex). */
  targetModules: string[] | string;
}

const CASES: Case[] = [
  {
    name: "query,value r 4 (the default targets; plain list)",
    numLabels: 2,
    lora: { r: 4, alpha: 8, targets: ["query", "value"] },
    targetModules: ["query", "value"],
  },
  {
    name: "key, attention.output.dense, intermediate.dense, rsLoRA, lora_dropout 0.05, 3 labels (plain list)",
    numLabels: 3,
    lora: {
      r: 3,
      alpha: 5,
      targets: ["key", "attention.output.dense", "intermediate.dense"],
      rslora: true,
      dropout: 0.05,
    },
    targetModules: ["key", "attention.output.dense", "intermediate.dense"],
  },
  {
    name: "all six targets, 1 output (regex: output.dense would also suffix-match attention.output.dense)",
    numLabels: 1,
    lora: {
      r: 2,
      alpha: 16,
      targets: ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    },
    targetModules:
      ".*\\.encoder\\.layer\\.\\d+\\.(attention\\.self\\.query|attention\\.self\\.key|attention\\.self\\.value|" +
      "attention\\.output\\.dense|intermediate\\.dense|output\\.dense)",
  },
];

for (const c of CASES) {
  Deno.test(`saveAdapter writes peft's names, shapes, values and config: ${c.name}`, async () => {
    const modelDir = await writeTinyModel(CFG, 11, "fedlodrop-export-model-");
    const out = await Deno.makeTempDir({ prefix: "fedlodrop-export-adapter-" });
    try {
      const model = await RobertaModel.load(modelDir, { numLabels: c.numLabels, lora: c.lora, seed: 5 });
      model.setAdapter(randomAdapter(model, 21, 0xe4));
      const adapterDir = `${out}/nested/adapter`; // created by saveAdapter
      await model.saveAdapter(adapterDir);

      // only the two files, no leftover temporaries
      const files = [...Deno.readDirSync(adapterDir)].map((e) => e.name).sort();
      deepStrictEqual(files, ["adapter_config.json", "adapter_model.safetensors"]);

      // tensors: exactly peft's names, F32, right shapes, values equal to getAdapter()
      const path = `${adapterDir}/adapter_model.safetensors`;
      const f = await SafetensorsFile.open(path);
      try {
        strictEqual(f.metadata.format, "pt", "transformers/peft refuse safetensors without format=pt");
        for (const t of f.tensors.values()) strictEqual(t.dtype, "F32", `${t.name} dtype`);
      } finally {
        f.close();
      }
      const saved = await readSafetensors(path);
      const want = expectedTensors(c.lora, c.numLabels);
      deepStrictEqual([...saved.keys()].sort(), [...want.keys()].sort());
      const adapter = await model.getAdapter();
      for (const [name, shape] of want) {
        const t = saved.get(name)!;
        deepStrictEqual(t.shape, shape, `${name} shape`);
        const a = adapter.get(name);
        ok(a, `getAdapter() has no ${name}`);
        strictEqual(t.data.length, a.length, `${name} length`);
        ok(t.data.every(Number.isFinite), `${name} has non-finite values`);
        deepStrictEqual(t.data, a, `${name} values differ from getAdapter()`);
      }
      // the values really are the random ones we set, not an untouched initialisation (B nonzero)
      const someB = [...saved.keys()].find((n) => n.endsWith("lora_B.weight"))!;
      ok(saved.get(someB)!.data.some((v) => v !== 0), `${someB} is all zero`);

      // adapter_config.json
      const cfg = JSON.parse(await Deno.readTextFile(`${adapterDir}/adapter_config.json`));
      strictEqual(cfg.peft_type, "LORA");
      strictEqual(cfg.task_type, "SEQ_CLS");
      strictEqual(cfg.r, c.lora.r);
      strictEqual(cfg.lora_alpha, c.lora.alpha);
      strictEqual(cfg.lora_dropout, c.lora.dropout ?? 0);
      deepStrictEqual(cfg.target_modules, c.targetModules);
      deepStrictEqual(cfg.modules_to_save, ["classifier", "score"]);
      strictEqual(cfg.use_rslora, c.lora.rslora ?? false);
      strictEqual(cfg.bias, "none");
      strictEqual(cfg.fan_in_fan_out, false);
      strictEqual(cfg.base_model_name_or_path, modelDir);

      // under peft's matching rules, target_modules selects exactly the adapted linears
      const adapted = new Set<string>();
      for (let i = 0; i < CFG.numLayers; i++) {
        for (const t of c.lora.targets) adapted.add(`roberta.encoder.layer.${i}.${SUFFIX[t]}`);
      }
      for (const key of linearModuleNames()) {
        strictEqual(peftMatches(cfg.target_modules, key), adapted.has(key), `target_modules on ${key}`);
      }
    } finally {
      await Deno.remove(modelDir, { recursive: true });
      await Deno.remove(out, { recursive: true });
    }
  });
}

Deno.test("saveAdapter overwrites an earlier export with the current values", async () => {
  const modelDir = await writeTinyModel(CFG, 12, "fedlodrop-export-model-");
  const out = await Deno.makeTempDir({ prefix: "fedlodrop-export-adapter-" });
  try {
    const model = await RobertaModel.load(modelDir, {
      numLabels: 2,
      lora: { r: 2, alpha: 4, targets: ["value"] },
    });
    await model.saveAdapter(out);
    const first = await readSafetensors(`${out}/adapter_model.safetensors`);
    const b = "base_model.model.roberta.encoder.layer.1.attention.self.value.lora_B.weight";
    ok(first.get(b)!.data.every((v) => v === 0), "peft initialises lora_B to zero");
    model.setAdapter(randomAdapter(model, 3, 0xe4));
    await model.saveAdapter(out);
    const second = await readSafetensors(`${out}/adapter_model.safetensors`);
    deepStrictEqual(second.get(b)!.data, (await model.getAdapter()).get(b));
    ok(second.get(b)!.data.some((v) => v !== 0));
    deepStrictEqual([...Deno.readDirSync(out)].map((e) => e.name).sort(), [
      "adapter_config.json",
      "adapter_model.safetensors",
    ]);
  } finally {
    await Deno.remove(modelDir, { recursive: true });
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("saveAdapter rejects a tensor whose shape is unknown, naming it", async () => {
  const out = await Deno.makeTempDir({ prefix: "fedlodrop-export-adapter-" });
  try {
    await rejects(
      saveAdapter(
        out,
        new Map([["base_model.model.mystery.weight", new Float32Array(4)]]),
        new Map(),
        { r: 2, alpha: 4, targets: ["query"] },
        "base",
      ),
      /base_model\.model\.mystery\.weight/,
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

const PEFT_PYTHON = await findHfPython();
if (!PEFT_PYTHON) console.log(hfSkipMessage("model_adapter_export: the peft round trip"));

/** Loads base + adapter with transformers/peft in fp32 eval mode; prints the logits as JSON. */
const PEFT_SCRIPT = `
import json, sys, torch
from transformers import RobertaForSequenceClassification
from peft import PeftModel
model_dir, adapter_dir, num_labels, batch, seq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ids = torch.tensor(json.loads(sys.stdin.read()), dtype=torch.long).reshape(batch, seq)
base = RobertaForSequenceClassification.from_pretrained(model_dir, num_labels=num_labels, torch_dtype=torch.float32)
model = PeftModel.from_pretrained(base, adapter_dir).eval()
with torch.no_grad():
    logits = model(input_ids=ids, attention_mask=(ids != ${CFG.padTokenId}).long()).logits
print(json.dumps(logits.reshape(-1).tolist()))
`;

Deno.test({
  name: "peft loads the exported adapter and gives the same logits",
  ignore: PEFT_PYTHON === null,
  fn: async () => {
    const modelDir = await writeTinyModel(CFG, 13, "fedlodrop-export-model-");
    const out = await Deno.makeTempDir({ prefix: "fedlodrop-export-adapter-" });
    try {
      for (const c of CASES) {
        const model = await RobertaModel.load(modelDir, { numLabels: c.numLabels, lora: c.lora, seed: 2 });
        model.setAdapter(randomAdapter(model, 31, 0xe4));
        const dir = `${out}/${c.numLabels}-${c.lora.targets.length}`;
        await model.saveAdapter(dir);
        const batch = 3, seq = 7, lengths = [7, 4, 2];
        const r = new KeyedRandom([13, Purpose.test, 0x9e]);
        const ids: number[] = [];
        for (let b = 0; b < batch; b++) {
          for (let t = 0; t < seq; t++) {
            ids.push(t === 0 ? 0 : t >= lengths[b] ? CFG.padTokenId : 3 + r.int(CFG.vocabSize - 3));
          }
        }
        const ours = await model.forward({ inputIds: Int32Array.from(ids), batch, seqLen: seq });
        const proc = new Deno.Command(PEFT_PYTHON!, {
          args: ["-c", PEFT_SCRIPT, modelDir, dir, String(c.numLabels), String(batch), String(seq)],
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const w = proc.stdin.getWriter();
        await w.write(new TextEncoder().encode(JSON.stringify(ids)));
        await w.close();
        const res = await proc.output();
        const err = new TextDecoder().decode(res.stderr);
        ok(res.success, `peft script failed (${c.name}):\n${err}`);
        const lines = new TextDecoder().decode(res.stdout).trim().split("\n");
        const theirs = Float32Array.from(JSON.parse(lines[lines.length - 1]) as number[]);
        strictEqual(theirs.length, batch * c.numLabels);
        // fp32 on both sides through 2 layers: ~1e-5 expected; 1e-4 leaves room for different summation orders
        assertClose(ours, theirs, 1e-4, `logits vs peft (${c.name})`);
      }
    } finally {
      await Deno.remove(modelDir, { recursive: true });
      await Deno.remove(out, { recursive: true });
    }
  },
});
