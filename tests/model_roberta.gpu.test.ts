/**
 * The whole GPU model against the float64 TypeScript reference (model/reference.ts) on tiny random models:
 * logits and every adapter gradient, several batch sizes and lengths, padding, nonzero B, FedLoDrop masks,
 * classification and regression; F16/BF16 checkpoints; loader errors.
 */
import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { RobertaModel } from "../model/roberta.ts";
import { type EncoderConfigLike, randomBase, refForward, refLossAndGrads } from "../model/reference.ts";
import type { LoraSettings } from "../model/names.ts";
import { writeSafetensors } from "../model/safetensors.ts";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import { assertClose, randomF32, relErr } from "./util.ts";
import { hfConfig, randomAdapter, randomMasks, TINY_ROBERTA, writeTinyModel } from "./model_fixture.ts";
import { getGpu } from "../kernels/device.ts";

const CFG: EncoderConfigLike = TINY_ROBERTA;

/** Writes a tiny random model folder; returns it and the base weights (float64 copies of what was written). */
async function tinyModel(
  seed: number,
  opts: { dtype?: "F32" | "F16" | "BF16"; drop?: string; reshape?: string } = {},
): Promise<{ dir: string; base: Map<string, Float64Array> }> {
  const dir = await Deno.makeTempDir({ prefix: "fedlodrop-model-" });
  const base = randomBase(CFG, seed);
  const tensors = new Map<string, { shape: number[]; data: Float32Array; dtype?: "F32" | "F16" | "BF16" }>();
  for (const [name, data] of base) {
    if (name === opts.drop) continue;
    tensors.set(name, { shape: shapeOf(name), data: Float32Array.from(data), dtype: opts.dtype ?? "F32" });
  }
  if (opts.reshape) {
    const t = tensors.get(opts.reshape)!;
    t.shape = [t.data.length];
  }
  await writeSafetensors(`${dir}/model.safetensors`, tensors);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(hfConfig(CFG)));
  return { dir, base };
}

function shapeOf(name: string): number[] {
  const H = CFG.hiddenSize, I = CFG.intermediateSize;
  if (name.endsWith("word_embeddings.weight")) return [CFG.vocabSize, H];
  if (name.endsWith("position_embeddings.weight")) return [CFG.maxPositionEmbeddings, H];
  if (name.endsWith("token_type_embeddings.weight")) return [CFG.typeVocabSize, H];
  if (name.endsWith("intermediate.dense.weight")) return [I, H];
  if (name.endsWith("intermediate.dense.bias")) return [I];
  if (/layer\.\d+\.output\.dense\.weight$/.test(name)) return [H, I];
  if (name.endsWith(".weight") && !name.includes("LayerNorm")) return [H, H];
  return [H];
}

function batchOf(seed: number, batch: number, seqLen: number, padFrom: number[]): Int32Array {
  const r = new KeyedRandom([seed, Purpose.test, 99]);
  const ids = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seqLen; t++) {
      ids[b * seqLen + t] = t === 0 ? 0 : t >= padFrom[b] ? CFG.padTokenId : 3 + r.int(CFG.vocabSize - 3);
    }
  }
  return ids;
}

const NO_DROPOUT = { hidden: 0, attention: 0, lora: 0 };

const CASES: {
  name: string;
  numLabels: number;
  lora: LoraSettings;
  batch: number;
  seqLen: number;
  padFrom: number[];
}[] = [
  {
    name: "q,v r4, batch 1 no padding",
    numLabels: 2,
    lora: { r: 4, alpha: 8, targets: ["query", "value"] },
    batch: 1,
    seqLen: 5,
    padFrom: [5],
  },
  {
    name: "all targets r3, batch 3 padded",
    numLabels: 3,
    lora: {
      r: 3,
      alpha: 6,
      targets: ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    },
    batch: 3,
    seqLen: 9,
    padFrom: [9, 4, 6],
  },
  {
    name: "regression rsLoRA, batch 2",
    numLabels: 1,
    lora: { r: 2, alpha: 4, targets: ["value", "query"], rslora: true },
    batch: 2,
    seqLen: 7,
    padFrom: [3, 7],
  },
];

for (const c of CASES) {
  Deno.test(`model: GPU logits and gradients equal the float64 reference (${c.name})`, async () => {
    const { dir, base } = await tinyModel(1);
    try {
      const model = await RobertaModel.load(dir, {
        numLabels: c.numLabels,
        lora: c.lora,
        seed: 5,
        dropout: NO_DROPOUT,
      });
      const adapter = randomAdapter(model, 3);
      model.setAdapter(adapter);
      const masks = randomMasks(model, 4);
      const inputIds = batchOf(2, c.batch, c.seqLen, c.padFrom);
      const labels = c.numLabels === 1
        ? Array.from({ length: c.batch }, (_, i) => 0.5 + i)
        : Array.from({ length: c.batch }, (_, i) => i % c.numLabels);
      const ref = { cfg: CFG, numLabels: c.numLabels, lora: model.lora, base, adapter };
      for (const m of [undefined, masks]) {
        const what = m ? "masked" : "unmasked";
        model.setMasks(m);
        const logits = await model.forward({ inputIds, batch: c.batch, seqLen: c.seqLen });
        const want = refForward(ref, { inputIds, batch: c.batch, seqLen: c.seqLen }, m).logits;
        // fp32 through 2 layers of LayerNorm/softmax: measured ~1e-6; bound 2e-5.
        assertClose(logits, want, 2e-5, `${what} logits`);
        const got = await model.lossAndGrads({ inputIds, batch: c.batch, seqLen: c.seqLen, labels }, {
          masks: m,
        });
        const r = refLossAndGrads(ref, { inputIds, batch: c.batch, seqLen: c.seqLen, labels }, m);
        ok(
          Math.abs(got.loss - r.loss) <= 2e-5 * Math.max(1, Math.abs(r.loss)),
          `${what} loss ${got.loss} vs ${r.loss}`,
        );
        for (const [name, g] of r.grads) {
          assertClose(got.grads.get(name)!, g, 1e-4, `${what} gradient ${name}`);
        }
        if (m) {
          for (const mod of model.modules) {
            const mk = m.get(mod.path)!, gA = got.grads.get(mod.a.name)!, gB = got.grads.get(mod.b.name)!;
            for (let j = 0; j < mod.nIn; j++) {
              if (mk.a[j] === 0) {
                for (let t = 0; t < c.lora.r; t++) strictEqual(gA[t * mod.nIn + j], 0, `dA ${mod.path}`);
              }
            }
            for (let o = 0; o < mod.nOut; o++) {
              if (mk.b[o] === 0) {
                for (let t = 0; t < c.lora.r; t++) strictEqual(gB[o * c.lora.r + t], 0, `dB ${mod.path}`);
              }
            }
          }
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("model: a training step with dropout decreases the loss and is reproducible from the seed", async () => {
  const { dir } = await tinyModel(1);
  try {
    const lora: LoraSettings = { r: 4, alpha: 8, targets: ["query", "value"], dropout: 0.1 };
    const run = async () => {
      const model = await RobertaModel.load(dir, { numLabels: 2, lora, seed: 9 });
      const inputIds = batchOf(3, 4, 8, [8, 6, 8, 5]);
      const input = { inputIds, batch: 4, seqLen: 8, labels: [0, 1, 1, 0] };
      const losses = [];
      for (let s = 1; s <= 15; s++) {
        losses.push(await model.trainStep(input, { lr: 1e-2, step: s, dropoutStream: s }));
      }
      return { losses, adapter: await model.getAdapter() };
    };
    const a = await run(), b = await run();
    deepStrictEqual(a.losses, b.losses);
    ok(a.losses.at(-1)! < a.losses[0], `loss went from ${a.losses[0]} to ${a.losses.at(-1)}`);
    for (const [k, v] of a.adapter) deepStrictEqual(v, b.adapter.get(k), k);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model: subadapter training leaves dropped rows/columns bit-identical", async () => {
  const { dir } = await tinyModel(1);
  try {
    const model = await RobertaModel.load(dir, {
      numLabels: 2,
      lora: { r: 4, alpha: 8, targets: ["query", "value"] },
      seed: 1,
    });
    model.setAdapter(randomAdapter(model, 8));
    const before = await model.getAdapter();
    const masks = randomMasks(model, 12);
    model.setMasks(masks);
    const input = { inputIds: batchOf(4, 2, 6, [6, 4]), batch: 2, seqLen: 6, labels: [1, 0] };
    for (let s = 1; s <= 3; s++) await model.trainStep(input, { lr: 1e-2, step: s });
    const after = await model.getAdapter();
    let changed = 0;
    for (const mod of model.modules) {
      const mk = masks.get(mod.path)!, r = 4;
      const A0 = before.get(mod.a.name)!,
        A1 = after.get(mod.a.name)!,
        B0 = before.get(mod.b.name)!,
        B1 = after.get(mod.b.name)!;
      for (let j = 0; j < mod.nIn; j++) {
        for (let t = 0; t < r; t++) {
          const i = t * mod.nIn + j;
          if (mk.a[j] === 0) strictEqual(A1[i], A0[i]);
          else if (A1[i] !== A0[i]) changed++;
        }
      }
      for (let o = 0; o < mod.nOut; o++) {
        for (let t = 0; t < r; t++) if (mk.b[o] === 0) strictEqual(B1[o * r + t], B0[o * r + t]);
      }
    }
    ok(changed > 0, "kept entries were trained");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model: F16 and BF16 checkpoints give the F32 result of the same rounded weights", async () => {
  const lora: LoraSettings = { r: 2, alpha: 4, targets: ["query", "value"] };
  const inputIds = batchOf(5, 2, 6, [6, 3]);
  const results: Float32Array[] = [];
  for (const dtype of ["F16", "BF16"] as const) {
    const { dir } = await tinyModel(2, { dtype });
    // the same weights rounded to the low precision, stored as F32
    const lowDir = await Deno.makeTempDir({ prefix: "fedlodrop-model-" });
    try {
      const { SafetensorsFile } = await import("../model/safetensors.ts");
      const f = await SafetensorsFile.open(`${dir}/model.safetensors`);
      const rounded = new Map<string, { shape: number[]; data: Float32Array }>();
      for (const [name, info] of f.tensors) {
        rounded.set(name, { shape: info.shape, data: await f.readF32(name) });
      }
      f.close();
      await writeSafetensors(`${lowDir}/model.safetensors`, rounded);
      await Deno.copyFile(`${dir}/config.json`, `${lowDir}/config.json`);
      const m1 = await RobertaModel.load(dir, { numLabels: 2, lora, seed: 1 });
      const m2 = await RobertaModel.load(lowDir, { numLabels: 2, lora, seed: 1 });
      const l1 = await m1.forward({ inputIds, batch: 2, seqLen: 6 });
      const l2 = await m2.forward({ inputIds, batch: 2, seqLen: 6 });
      deepStrictEqual(l1, l2, dtype);
      results.push(l1);
    } finally {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(lowDir, { recursive: true });
    }
  }
  ok(
    results[0].some((v, i) => v !== results[1][i]),
    "F16 and BF16 roundings differ, so the comparison is not vacuous",
  );
});

Deno.test("model: a missing or mis-shaped tensor is an error naming it", async () => {
  const lora: LoraSettings = { r: 2, alpha: 4, targets: ["query", "value"] };
  const miss = await tinyModel(1, { drop: "roberta.encoder.layer.1.attention.self.key.weight" });
  const bad = await tinyModel(1, { reshape: "roberta.encoder.layer.0.intermediate.dense.weight" });
  try {
    await rejects(
      () => RobertaModel.load(miss.dir, { numLabels: 2, lora }),
      /roberta\.encoder\.layer\.1\.attention\.self\.key\.weight.*missing/,
    );
    await rejects(
      () => RobertaModel.load(bad.dir, { numLabels: 2, lora }),
      /intermediate\.dense\.weight has shape \[384\], expected \[24,16\]/,
    );
  } finally {
    await Deno.remove(miss.dir, { recursive: true });
    await Deno.remove(bad.dir, { recursive: true });
  }
});

Deno.test("model: mergeResidual adds left·right to the frozen weight (FedEx-LoRA), other modules untouched", async () => {
  const { dir } = await tinyModel(1);
  try {
    const model = await RobertaModel.load(dir, {
      numLabels: 2,
      lora: { r: 2, alpha: 4, targets: ["query", "value"] },
    });
    const path = "roberta.encoder.layer.1.attention.self.value",
      other = "roberta.encoder.layer.0.attention.self.value";
    const w0 = await model.readModuleWeight(path), o0 = await model.readModuleWeight(other);
    const q = 5, H = CFG.hiddenSize;
    const r = new KeyedRandom([3, Purpose.test, 5]);
    const left = Float32Array.from({ length: H * q }, () => r.uniform() - 0.5);
    const right = Float32Array.from({ length: q * H }, () => r.uniform() - 0.5);
    model.mergeResidual(path, left, right, q);
    const want = new Float64Array(H * H);
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < H; j++) {
        let s = w0[i * H + j];
        for (let t = 0; t < q; t++) s += left[i * q + t] * right[t * H + j];
        want[i * H + j] = s;
      }
    }
    assertClose(await model.readModuleWeight(path), want, 1e-6, "merged weight");
    deepStrictEqual(await model.readModuleWeight(other), o0);
    throws(
      () => model.mergeResidual("roberta.encoder.layer.0.attention.self.key", left, right, q),
      /not an adapted module/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** `<s> A </s></s> B </s>` pairs padded to a common length, as the tokenizer lays them out. */
function pairBatch(lengths: [number, number][], seqLen: number): Int32Array {
  const r = new KeyedRandom([21, Purpose.test, 3]);
  const ids = new Int32Array(lengths.length * seqLen).fill(CFG.padTokenId);
  lengths.forEach(([a, b], row) => {
    const seq = [0, ...Array.from({ length: a }, () => 3 + r.int(CFG.vocabSize - 3)), 2, 2];
    seq.push(...Array.from({ length: b }, () => 3 + r.int(CFG.vocabSize - 3)), 2);
    ids.set(seq, row * seqLen);
  });
  return ids;
}

Deno.test("model: sentence pairs in training mode with dropout rates 0 match the reference; finite differences on the GPU", async () => {
  const { dir, base } = await tinyModel(3);
  try {
    const lora: LoraSettings = { r: 2, alpha: 4, targets: ["query", "value", "output.dense"] };
    const model = await RobertaModel.load(dir, { numLabels: 2, lora, seed: 2, dropout: NO_DROPOUT });
    const adapter = randomAdapter(model, 6);
    model.setAdapter(adapter);
    const seqLen = 11, inputIds = pairBatch([[3, 4], [2, 2], [4, 2]], seqLen);
    const input = { inputIds, batch: 3, seqLen, labels: [1, 0, 1] };
    const ref = refLossAndGrads({ cfg: CFG, numLabels: 2, lora: model.lora, base, adapter }, input);
    const got = await model.lossAndGrads(input, { train: true });
    ok(Math.abs(got.loss - ref.loss) <= 2e-5, `loss ${got.loss} vs ${ref.loss}`);
    for (const [name, g] of ref.grads) {
      assertClose(got.grads.get(name)!, g, 1e-4, `train-mode gradient ${name}`);
    }
    // central differences of the fp32 GPU loss on a few entries of different tensors (h = 1e-2: fp32 loss
    // differences then carry ~1e-5 relative noise; the curvature error is O(h²))
    const picks: [string, number][] = [
      ["base_model.model.roberta.encoder.layer.0.attention.self.query.lora_A.weight", 5],
      ["base_model.model.roberta.encoder.layer.1.attention.self.value.lora_B.weight", 7],
      ["base_model.model.roberta.encoder.layer.0.output.dense.lora_A.weight", 11],
      ["base_model.model.classifier.dense.weight", 3],
    ];
    const h = 1e-2;
    for (const [name, i] of picks) {
      const lossAt = async (delta: number) => {
        const t = adapter.get(name)!.slice();
        t[i] += delta;
        model.setAdapter(new Map([[name, t]]));
        return (await model.lossAndGrads(input)).loss;
      };
      const fd = ((await lossAt(h)) - (await lossAt(-h))) / (2 * h);
      model.setAdapter(new Map([[name, adapter.get(name)!]]));
      const g = got.grads.get(name)![i];
      ok(
        Math.abs(fd - g) <= 0.02 * Math.abs(g) + 2e-4,
        `${name}[${i}]: finite difference ${fd} vs gradient ${g}`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model: forward passes use a one-layer inference plan; logits equal the reference and the training plan's", async () => {
  const { dir, base } = await tinyModel(4);
  try {
    const lora: LoraSettings = { r: 4, alpha: 8, targets: ["query", "value", "output.dense"] };
    const model = await RobertaModel.load(dir, { numLabels: 3, lora, seed: 5, dropout: NO_DROPOUT });
    const adapter = randomAdapter(model, 6);
    model.setAdapter(adapter);
    const ref = { cfg: CFG, numLabels: 3, lora: model.lora, base, adapter };
    const big = { inputIds: batchOf(7, 4, 11, [11, 5, 8, 2]), batch: 4, seqLen: 11 };
    const small = { inputIds: batchOf(8, 2, 6, [6, 3]), batch: 2, seqLen: 6 };
    // A fresh model's forward allocates only an inference plan.
    const fresh = await model.forward(big);
    assertClose(fresh, refForward(ref, big).logits, 2e-5, "inference-plan logits (fresh model)");
    const inferenceBytes = model.activationBytes;
    const smallInference = await model.forward(small);
    strictEqual(model.activationBytes, inferenceBytes, "a smaller forward reuses the inference plan");
    // A training pass adds the training plan (every layer's activations): more bytes than the inference plan
    // for 4× the rows, although it is sized for 2 × 6 tokens only.
    await model.lossAndGrads({ ...small, labels: [0, 2] });
    const trainingBytes = model.activationBytes - inferenceBytes;
    ok(trainingBytes > 0, "lossAndGrads allocates a training plan");
    // A batch the training plan holds runs there, bit-identical to the inference plan's result.
    deepStrictEqual(
      await model.forward(small),
      smallInference,
      "training-plan forward = inference-plan forward",
    );
    strictEqual(model.activationBytes - inferenceBytes, trainingBytes, "no plan grows for a batch that fits");
    // A batch it does not hold goes back to the inference plan, which still gives the reference.
    assertClose(
      await model.forward(big),
      refForward(ref, big).logits,
      2e-5,
      "inference-plan logits (after training)",
    );
    strictEqual(
      model.activationBytes,
      inferenceBytes + trainingBytes,
      "no plan grows for the big batch either",
    );
    // Per token and layer the inference plan holds one layer's activations, the training plan every layer's.
    const perToken = (bytes: number, tokens: number) => bytes / tokens;
    ok(
      perToken(inferenceBytes, 4 * 11) < perToken(trainingBytes, 2 * 6),
      `inference plan ${inferenceBytes} B for 44 tokens vs training plan ${trainingBytes} B for 12 tokens`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A 64-wide model: at batch 4 × 72 tokens its products take the texture-fed GEMM on CPU adapters. */
const WIDE: EncoderConfigLike = {
  ...CFG,
  hiddenSize: 64,
  intermediateSize: 128,
  numHeads: 2,
  maxPositionEmbeddings: 80,
};

Deno.test("model: at texture-GEMM sizes (LoRA r 8 included) logits and gradients equal the float64 reference", async () => {
  // rows · 64 · 64 >= 2^20 for the projections and rows · 8 · 64 >= 2^17 for LoRA's rank-wide products, so on
  // llvmpipe every unbatched product takes the texture path; on GPUs this is one more reference comparison.
  const dir = await writeTinyModel(WIDE, 6);
  try {
    const lora: LoraSettings = { r: 8, alpha: 16, targets: ["query", "value", "output.dense"] };
    const model = await RobertaModel.load(dir, { numLabels: 3, lora, seed: 2, dropout: NO_DROPOUT });
    const adapter = randomAdapter(model, 8);
    model.setAdapter(adapter);
    const masks = randomMasks(model, 9);
    const B = 4, T = 72;
    const inputIds = batchOf(4, B, T, [72, 50, 61, 33]);
    const input = { inputIds, batch: B, seqLen: T, labels: [0, 2, 1, 2] };
    const ref = { cfg: WIDE, numLabels: 3, lora: model.lora, base: randomBase(WIDE, 6), adapter };
    assertClose(await model.forward(input, { masks }), refForward(ref, input, masks).logits, 2e-5, "logits");
    const got = await model.lossAndGrads(input, { masks });
    const want = refLossAndGrads(ref, input, masks);
    ok(
      Math.abs(got.loss - want.loss) <= 2e-5 * Math.max(1, Math.abs(want.loss)),
      `loss ${got.loss} vs ${want.loss}`,
    );
    for (const [name, g] of want.grads) assertClose(got.grads.get(name)!, g, 1e-4, `gradient ${name}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model: packed frozen weights (texture GEMM) give the per-product packing's results bit for bit, also after mergeResidual", async () => {
  // Large enough for the texture-fed GEMM on CPU adapters (rows · 64 · 64 >= 2^20); on GPUs both runs take the
  // buffer path and agree trivially.
  const cfg = WIDE;
  const dir = await writeTinyModel(cfg, 5);
  try {
    const lora: LoraSettings = { r: 4, alpha: 8, targets: ["query", "value"] };
    const B = 4, T = 72;
    const inputIds = batchOf(3, B, T, [72, 72, 72, 72]);
    const labels = [0, 1, 1, 0];
    const results: { losses: number[]; logits: Float32Array[]; adapter: Map<string, Float32Array> }[] = [];
    let packed = { bytes: 0, hits: 0 };
    for (const budget of [0, undefined]) {
      const model = await RobertaModel.load(dir, { numLabels: 2, lora, seed: 1, packedWeightBudget: budget });
      const losses: number[] = [], logits: Float32Array[] = [];
      for (let step = 1; step <= 2; step++) {
        losses.push(await model.trainStep({ inputIds, batch: B, seqLen: T, labels }, { lr: 1e-2, step }));
      }
      logits.push(await model.forward({ inputIds, batch: B, seqLen: T }));
      // A FedEx merge changes a frozen weight: its packed textures must be packed again.
      const path = model.modules[0].path, mod = model.modules[0];
      model.mergeResidual(path, randomF32(mod.nOut * 2, 8), randomF32(2 * mod.nIn, 9), 2);
      logits.push(await model.forward({ inputIds, batch: B, seqLen: T }));
      losses.push(await model.trainStep({ inputIds, batch: B, seqLen: T, labels }, { lr: 1e-2, step: 3 }));
      results.push({ losses, logits, adapter: await model.getAdapter() });
      if (budget === undefined) packed = model.packedWeights;
    }
    const [plain, cached] = results;
    deepStrictEqual(cached.losses, plain.losses, "losses");
    deepStrictEqual(cached.logits, plain.logits, "logits before and after the merge");
    deepStrictEqual(cached.adapter, plain.adapter, "adapter after 3 steps");
    ok(plain.logits[0].some((v, i) => v !== plain.logits[1][i]), "the merge changed the logits");
    const gpu = await getGpu();
    if (gpu.isCpu) ok(packed.bytes > 0 && packed.hits > 0, `packed textures used: ${JSON.stringify(packed)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model: the last layer's [CLS] rows alone give the whole layer's logits, losses and gradients (dropout everywhere)", async () => {
  // Only [CLS]'s row of the last layer reaches the head, so by default that layer computes those rows alone
  // (lastLayerAllRows false). With hidden, attention and LoRA dropout on, every mask of those rows must be the
  // one the whole layer's pass draws there, or the results differ by far more than rounding. One layer: the
  // last layer is also the first (no input gradient); WIDE: texture-GEMM sizes on llvmpipe.
  for (
    const [cfg, B, T, padFrom] of [
      [CFG, 3, 7, [7, 5, 3]],
      [{ ...CFG, numLayers: 1 }, 2, 6, [6, 4]],
      [WIDE, 4, 40, [40, 29, 33, 18]],
    ] as const
  ) {
    const dir = await writeTinyModel(cfg, 11);
    try {
      const lora: LoraSettings = {
        r: 4,
        alpha: 8,
        targets: ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
      };
      const dropout = { hidden: 0.2, attention: 0.2, lora: 0.2 };
      const model = await RobertaModel.load(dir, { numLabels: 3, lora, seed: 4, dropout });
      model.setAdapter(randomAdapter(model, 5));
      const masks = randomMasks(model, 6);
      const input = {
        inputIds: batchOf(7, B, T, [...padFrom]),
        batch: B,
        seqLen: T,
        labels: [0, 2, 1, 2].slice(0, B),
      };
      const run = async (allRows: boolean, stream: number) => {
        model.lastLayerAllRows = allRows;
        const evalLogits = await model.forward(input, { masks });
        const trainLogits = await model.forward(input, { masks, train: true, dropoutStream: stream });
        const { loss, grads } = await model.lossAndGrads(input, {
          masks,
          train: true,
          dropoutStream: stream,
        });
        return { evalLogits, trainLogits, loss, grads };
      };
      const cls = await run(false, 3), all = await run(true, 3), other = await run(false, 4);
      const what = `${cfg.numLayers} layers, hidden ${cfg.hiddenSize}, ${B}x${T}`;
      assertClose(cls.evalLogits, all.evalLogits, 1e-6, `eval logits (${what})`);
      assertClose(cls.trainLogits, all.trainLogits, 1e-6, `training-mode logits (${what})`);
      assertClose([cls.loss], [all.loss], 1e-6, `loss (${what})`);
      for (const [name, g] of all.grads) {
        assertClose(cls.grads.get(name)!, g, 1e-5, `gradient ${name} (${what})`);
      }
      // the dropout masks matter: another stream moves the training-mode logits well past these bounds
      ok(relErr(other.trainLogits, cls.trainLogits, 1e-6) > 1e-3, `dropout has no visible effect (${what})`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});
