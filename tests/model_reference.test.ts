/**
 * Tests of the float64 reference model (model/reference.ts) and the shared names (model/names.ts): hand-written
 * backward against central finite differences on every adapter tensor kind (nonzero B, FedLoDrop masks with
 * zeros, classification and regression), exact zeros for dropped entries, position ids worked by hand,
 * padding invariance, LoRA against the merged dense weight, erf against known values, input validation.
 */
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import {
  adapterLayout,
  baseLayout,
  HEAD_NAMES,
  LORA_TARGETS,
  loraNames,
  loraScale,
  type LoraSettings,
  modulePath,
  moduleShape,
} from "../model/names.ts";
import {
  ATTENTION_MASK_VALUE,
  bertPositionIds,
  type EncoderConfigLike,
  erf,
  geluExact,
  geluExactGrad,
  initAdapter,
  loraModulePaths,
  positionIds,
  randomBase,
  refForward,
  type RefInput,
  refLossAndGrads,
  type RefModel,
  type RefModuleMask,
  type RefTensor,
} from "../model/reference.ts";
import { assertClose, randomF64, relErr } from "./util.ts";

const CFG: EncoderConfigLike = {
  hiddenSize: 8,
  numLayers: 2,
  numHeads: 2,
  intermediateSize: 16,
  layerNormEps: 1e-5,
  padTokenId: 1,
  vocabSize: 50,
  maxPositionEmbeddings: 20,
  typeVocabSize: 1,
};

/** The same shapes as a BERT: positions from 0, two token types, pad id 0, a frozen pooler. */
const BERT_CFG: EncoderConfigLike = { ...CFG, modelType: "bert", padTokenId: 0, typeVocabSize: 2 };

const ALL_TARGETS: LoraSettings = { r: 3, alpha: 6, targets: [...LORA_TARGETS] };

/** Batch 2: sequence 0 has 7 real tokens, sequence 1 has 5 real tokens then 2 pads (seqLen 7). */
function makeInput(seed: number, cfg = CFG): RefInput {
  const r = new KeyedRandom([seed, Purpose.test, 11]);
  const lengths = [7, 5];
  const seqLen = 7;
  const ids = new Int32Array(2 * seqLen).fill(cfg.padTokenId);
  lengths.forEach((len, b) => {
    ids[b * seqLen] = cfg.padTokenId === 0 ? 3 : 0;
    for (let t = 1; t < len - 1; t++) ids[b * seqLen + t] = 3 + r.int(cfg.vocabSize - 3);
    ids[b * seqLen + len - 1] = 2;
  });
  if (cfg.modelType !== "bert") return { inputIds: ids, batch: 2, seqLen };
  // A pair layout: the second segment (type 1) starts at token 3 of each sequence; padding keeps type 0.
  const typeIds = new Int32Array(2 * seqLen);
  lengths.forEach((len, b) => {
    for (let t = 3; t < len; t++) typeIds[b * seqLen + t] = 1;
  });
  return { inputIds: ids, batch: 2, seqLen, typeIds };
}

/** Adapter from initAdapter with every B (and the head biases) replaced by random nonzero values. */
function makeAdapter(numLabels: number, lora: LoraSettings, seed: number, cfg = CFG): Map<string, RefTensor> {
  const init = initAdapter(cfg, numLabels, lora, seed);
  const out = new Map<string, RefTensor>();
  adapterLayout(cfg, numLabels, lora).forEach((t, i) => {
    const v = Float64Array.from(init.get(t.name)!);
    if (t.kind === "lora_B" || (t.kind === "head" && t.shape.length === 1)) {
      v.set(randomF64(v.length, 500 + seed * 100 + i, -0.5, 0.5));
    }
    if (t.kind === "head" && t.shape.length === 2) {
      v.set(randomF64(v.length, 700 + seed * 100 + i, -0.4, 0.4));
    }
    out.set(t.name, v);
  });
  return out;
}

/** 0/1 vector with about a third zeros, at least one zero and one one. */
function maskVec(n: number, key: number): Float64Array {
  const r = new KeyedRandom([9, Purpose.mask, key]);
  const m = new Float64Array(n);
  for (let i = 0; i < n; i++) m[i] = r.uniform() < 0.35 ? 0 : 1;
  m[key % n] = 0;
  m[(key + 1) % n] = 1;
  return m;
}

function makeMasks(lora: LoraSettings, cfg = CFG): Map<string, RefModuleMask> {
  const masks = new Map<string, RefModuleMask>();
  const layout = adapterLayout(cfg, 1, lora);
  loraModulePaths(cfg, lora).forEach((path, i) => {
    const nIn = layout.find((t) => t.module === path && t.kind === "lora_A")!.shape[1];
    const nOut = layout.find((t) => t.module === path && t.kind === "lora_B")!.shape[0];
    masks.set(path, { a: maskVec(nIn, 2 * i + 1), b: maskVec(nOut, 2 * i + 2) });
  });
  return masks;
}

/** Central differences on a few entries of every adapter tensor; dropped entries must be exactly 0 both ways. */
function checkGradients(numLabels: number, labels: number[], lora: LoraSettings, cfg = CFG): void {
  const m: RefModel = {
    cfg,
    numLabels,
    lora,
    base: randomBase(cfg, 3),
    adapter: makeAdapter(numLabels, lora, 4, cfg),
  };
  const input = { ...makeInput(5, cfg), labels };
  const masks = makeMasks(lora, cfg);
  const { loss, grads } = refLossAndGrads(m, input, masks);
  ok(Number.isFinite(loss) && loss > 0, `loss ${loss}`);
  const layout = adapterLayout(cfg, numLabels, lora);
  deepStrictEqual([...grads.keys()].sort(), layout.map((t) => t.name).sort());
  const h = 1e-5;
  const r = new KeyedRandom([17, Purpose.test, numLabels]);
  let kinds = new Set<string>();
  for (const t of layout) {
    const g = grads.get(t.name)!;
    const value = m.adapter.get(t.name)! as Float64Array;
    strictEqual(g.length, value.length, t.name);
    const mk = t.module ? masks.get(t.module)! : undefined;
    const dropped = (idx: number): boolean => {
      if (!mk) return false;
      if (t.kind === "lora_A") return mk.a[idx % t.shape[1]] === 0; // column of A
      return mk.b[Math.floor(idx / t.shape[1])] === 0; // row of B
    };
    // every dropped entry has gradient exactly +0
    let nDropped = 0;
    for (let i = 0; i < g.length; i++) {
      if (dropped(i)) {
        nDropped++;
        ok(Object.is(g[i], 0), `${t.name}[${i}] is dropped but has gradient ${g[i]}`);
      }
    }
    if (t.kind !== "head") ok(nDropped > 0, `${t.name}: test masks drop nothing`);
    const picks: number[] = [];
    for (let tries = 0; picks.length < 4 && tries < 200; tries++) {
      const i = r.int(g.length);
      if (!dropped(i) && !picks.includes(i)) picks.push(i);
    }
    if (g.length <= 4) picks.splice(0, picks.length, ...Array.from({ length: g.length }, (_, i) => i));
    const fd: number[] = [], an: number[] = [];
    for (const i of picks) {
      const v0 = value[i];
      value[i] = v0 + h;
      const lp = refLossAndGrads(m, input, masks).loss;
      value[i] = v0 - h;
      const lm = refLossAndGrads(m, input, masks).loss;
      value[i] = v0;
      fd.push((lp - lm) / (2 * h));
      an.push(g[i]);
    }
    ok(Math.max(...an.map(Math.abs)) > 1e-6, `${t.name}: gradients too small to test (${an})`);
    assertClose(an, fd, 1e-6, `${t.name} gradient vs finite differences`);
    // perturbing a dropped entry leaves the loss bit-identical
    const di = Array.from({ length: g.length }, (_, i) => i).find(dropped);
    if (di !== undefined) {
      const v0 = value[di];
      value[di] = v0 + 0.3;
      strictEqual(
        refLossAndGrads(m, input, masks).loss,
        loss,
        `${t.name}[${di}] is dropped but changes the loss`,
      );
      value[di] = v0;
    }
    kinds = kinds.add(t.kind);
  }
  deepStrictEqual([...kinds].sort(), ["head", "lora_A", "lora_B"]);
}

Deno.test("reference: gradients match finite differences (classification, 3 labels, all targets, masked)", () => {
  checkGradients(3, [2, 0], ALL_TARGETS);
});

Deno.test("reference (BERT): gradients match finite differences (pairs with token types, all targets, masked)", () => {
  checkGradients(3, [1, 2], ALL_TARGETS, BERT_CFG);
});

Deno.test("reference (BERT): regression gradients match finite differences (rsLoRA on q/v)", () => {
  checkGradients(1, [0.7, -1.1], { r: 2, alpha: 4, targets: ["query", "value"], rslora: true }, BERT_CFG);
});

Deno.test("reference (BERT): positions from 0, token types and the frozen pooler enter the logits", () => {
  const lora: LoraSettings = { r: 2, alpha: 4, targets: ["query", "value"] };
  const base = randomBase(BERT_CFG, 3);
  const m: RefModel = { cfg: BERT_CFG, numLabels: 2, lora, base, adapter: makeAdapter(2, lora, 4, BERT_CFG) };
  deepStrictEqual(bertPositionIds(2, 3, 20), Int32Array.from([0, 1, 2, 0, 1, 2]));
  throws(() => bertPositionIds(1, 21, 20), /max_position_embeddings 20/);
  deepStrictEqual(
    adapterLayout(BERT_CFG, 2, lora).filter((t) => t.kind === "head").map((t) => [t.name, t.shape]),
    [
      ["base_model.model.classifier.weight", [2, 8]],
      ["base_model.model.classifier.bias", [2]],
    ],
  );
  ok(base.has("bert.pooler.dense.weight") && base.has("bert.embeddings.word_embeddings.weight"));
  ok(!base.has("roberta.embeddings.word_embeddings.weight"));
  const input = makeInput(5, BERT_CFG);
  const logits = refForward(m, input).logits;
  // Token types matter: all-zero types give other logits.
  const zeroTypes = refForward(m, { ...input, typeIds: new Int32Array(input.inputIds.length) }).logits;
  ok(relErr(zeroTypes, logits) > 1e-3, "token types do not change the logits");
  // By hand: the logits of sequence 0 from the reference's own last hidden state, pooler and classifier.
  const H = BERT_CFG.hiddenSize, T = input.seqLen;
  const last = refForward(m, input).hiddenStates[BERT_CFG.numLayers];
  const pw = base.get("bert.pooler.dense.weight")!, pb = base.get("bert.pooler.dense.bias")!;
  const cw = m.adapter.get("base_model.model.classifier.weight")!;
  const cb = m.adapter.get("base_model.model.classifier.bias")!;
  for (let b = 0; b < 2; b++) {
    const pooled = Array.from({ length: H }, (_, o) => {
      let acc = pb[o];
      for (let c = 0; c < H; c++) acc += pw[o * H + c] * last[b * T * H + c];
      return Math.tanh(acc);
    });
    for (let o = 0; o < 2; o++) {
      let acc = cb[o];
      for (let c = 0; c < H; c++) acc += cw[o * H + c] * pooled[c];
      ok(Math.abs(acc - logits[b * 2 + o]) < 1e-12, `logit [${b}, ${o}] ${logits[b * 2 + o]} vs ${acc}`);
    }
  }
  // Positions count from 0 whatever the padding: the embedding output of token t uses position row t.
  const emb0 = refForward(m, input).hiddenStates[0];
  const word = base.get("bert.embeddings.word_embeddings.weight")!;
  const pos = base.get("bert.embeddings.position_embeddings.weight")!;
  const typ = base.get("bert.embeddings.token_type_embeddings.weight")!;
  const g = base.get("bert.embeddings.LayerNorm.weight")!, be = base.get("bert.embeddings.LayerNorm.bias")!;
  const t = 4, n = 0 * T + t, id = input.inputIds[n], ty = input.typeIds![n];
  const x = Array.from({ length: H }, (_, c) => word[id * H + c] + pos[t * H + c] + typ[ty * H + c]);
  const mean = x.reduce((a, v) => a + v, 0) / H;
  const vr = x.reduce((a, v) => a + (v - mean) ** 2, 0) / H;
  for (let c = 0; c < H; c++) {
    const want = ((x[c] - mean) / Math.sqrt(vr + BERT_CFG.layerNormEps)) * g[c] + be[c];
    ok(Math.abs(emb0[n * H + c] - want) < 1e-12, `embedding [${n}, ${c}]`);
  }
  throws(
    () => refForward(m, { ...input, typeIds: new Int32Array(input.inputIds.length).fill(2) }),
    /typeIds\[0\] = 2 is outside \[0, type_vocab_size 2\)/,
  );
});

Deno.test("reference: gradients match finite differences (regression, 1 label, rsLoRA on q/v)", () => {
  checkGradients(1, [0.7, -1.3], { r: 4, alpha: 8, rslora: true, targets: ["value", "query"] });
});

Deno.test("reference: loss is the mean cross-entropy / squared error of the logits", () => {
  const input = makeInput(6);
  for (const numLabels of [3, 1]) {
    const m: RefModel = {
      cfg: CFG,
      numLabels,
      lora: ALL_TARGETS,
      base: randomBase(CFG, 8),
      adapter: makeAdapter(numLabels, ALL_TARGETS, 9),
    };
    const labels = numLabels === 1 ? [0.25, 2.5] : [1, 2];
    const { logits } = refForward(m, input);
    let want = 0;
    for (let b = 0; b < 2; b++) {
      if (numLabels === 1) want += (logits[b] - labels[b]) ** 2 / 2;
      else {
        const row = Array.from(logits.subarray(b * 3, b * 3 + 3));
        want += -Math.log(Math.exp(row[labels[b]]) / row.reduce((s, x) => s + Math.exp(x), 0)) / 2;
      }
    }
    const got = refLossAndGrads(m, { ...input, labels }, undefined);
    ok(Math.abs(got.loss - want) <= 1e-12 * Math.abs(want), `loss ${got.loss} vs ${want}`);
    assertClose(got.logits, logits, 0, "logits of refLossAndGrads vs refForward");
  }
});

Deno.test("reference: position ids worked by hand", () => {
  // <s> a b </s> pad pad → mask 1 1 1 1 0 0, cumsum 1 2 3 4 4 4, ×mask 1 2 3 4 0 0, +pad(1) → 2 3 4 5 1 1
  deepStrictEqual(Array.from(positionIds(Int32Array.from([0, 17, 23, 2, 1, 1]), 1, 6, 1)), [
    2,
    3,
    4,
    5,
    1,
    1,
  ]);
  // two rows; a pad in the middle does not advance the count: mask 1 0 1 1 → cumsum 1 1 2 3 → 2 1 3 4
  deepStrictEqual(
    Array.from(positionIds(Int32Array.from([0, 9, 9, 2, 0, 1, 5, 2]), 2, 4, 1)),
    [2, 3, 4, 5, 2, 1, 3, 4],
  );
  // pad id 0 convention: first real token gets 1
  deepStrictEqual(Array.from(positionIds(Int32Array.from([5, 6, 0]), 1, 3, 0)), [1, 2, 0]);
  throws(
    () => positionIds(Int32Array.from([0, 4, 4, 2]), 1, 4, 1, 5),
    /position id 5.*max_position_embeddings is 5/,
  );
  throws(() => positionIds(Int32Array.from([0, 4, 4]), 1, 4, 1), /expected batch·seqLen/);
});

Deno.test("reference: padding does not change a sequence's logits or its real tokens' hidden states", () => {
  const m: RefModel = {
    cfg: CFG,
    numLabels: 3,
    lora: ALL_TARGETS,
    base: randomBase(CFG, 12),
    adapter: makeAdapter(3, ALL_TARGETS, 13),
  };
  const masks = makeMasks(ALL_TARGETS);
  const padded = makeInput(14);
  const alone = { inputIds: padded.inputIds.slice(7, 12), batch: 1, seqLen: 5 };
  const a = refForward(m, padded, masks), b = refForward(m, alone, masks);
  assertClose(a.logits.subarray(3, 6), b.logits, 1e-12, "logits of padded row vs unpadded");
  strictEqual(a.hiddenStates.length, CFG.numLayers + 1);
  for (let l = 0; l <= CFG.numLayers; l++) {
    assertClose(a.hiddenStates[l].subarray(7 * 8, 12 * 8), b.hiddenStates[l], 1e-12, `hidden state ${l}`);
  }
  // the row without padding is influenced by its last tokens (the mask is not applied to real keys)
  const changed = padded.inputIds.slice();
  changed[5] = changed[5] === 40 ? 41 : 40;
  const c = refForward(m, { ...padded, inputIds: changed }, masks);
  ok(
    relErr(c.logits.subarray(0, 3), a.logits.subarray(0, 3)) > 1e-6,
    "changing a real token changed nothing",
  );
  ok(ATTENTION_MASK_VALUE === -3.4028234663852886e38);
});

Deno.test("reference: masked LoRA equals the frozen model with W + s·diag(mB)·B·A·diag(mA) merged in", () => {
  const lora: LoraSettings = {
    r: 3,
    alpha: 5,
    targets: ["query", "value", "intermediate.dense", "output.dense"],
  };
  const base = randomBase(CFG, 21);
  const adapter = makeAdapter(2, lora, 22);
  const masks = makeMasks(lora);
  const s = loraScale(lora);
  strictEqual(s, 5 / 3);
  const merged = new Map(base);
  for (const path of loraModulePaths(CFG, lora)) {
    const names = loraNames(path);
    const A = adapter.get(names.a)!,
      B = adapter.get(names.b)!,
      W = Float64Array.from(base.get(`${path}.weight`)!);
    const { a: mA, b: mB } = masks.get(path)!;
    const nOut = mB.length, nIn = mA.length;
    for (let o = 0; o < nOut; o++) {
      for (let i = 0; i < nIn; i++) {
        let acc = 0;
        for (let j = 0; j < lora.r; j++) acc += B[o * lora.r + j] * A[j * nIn + i];
        W[o * nIn + i] += s * mB[o] * acc * mA[i];
      }
    }
    merged.set(`${path}.weight`, W);
  }
  const noLora: LoraSettings = { r: 3, alpha: 5, targets: [] };
  const headOnly = new Map([...adapter].filter(([k]) => k.includes("classifier")));
  const input = makeInput(23);
  const got = refForward({ cfg: CFG, numLabels: 2, lora, base, adapter }, input, masks).logits;
  const want =
    refForward({ cfg: CFG, numLabels: 2, lora: noLora, base: merged, adapter: headOnly }, input).logits;
  assertClose(got, want, 1e-12, "LoRA branch vs merged weight");
  // the masks matter (the merged weights without masks give different logits)
  const unmasked = refForward({ cfg: CFG, numLabels: 2, lora, base, adapter }, input).logits;
  ok(relErr(unmasked, want) > 1e-6, "masks had no effect");
  // all-ones masks are the same as no masks, bit for bit
  const ones = new Map([...masks].map(([k, v]) => [k, { a: v.a.map(() => 1), b: v.b.map(() => 1) }]));
  deepStrictEqual(refForward({ cfg: CFG, numLabels: 2, lora, base, adapter }, input, ones).logits, unmasked);
});

Deno.test("reference: erf and exact GELU", () => {
  // values of Python's math.erf
  const known: [number, number][] = [
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [1.5, 0.9661051464753108],
    [2, 0.9953222650189527],
    [2.5, 0.999593047982555],
    [3, 0.9999779095030014],
    [3.5, 0.9999992569016276],
    [4, 0.9999999845827421],
    [5, 0.9999999999984626],
    [-0.7, -0.6778011938374184],
    [-2.2, -0.9981371537020182],
  ];
  for (const [x, want] of known) {
    ok(Math.abs(erf(x) - want) <= 1e-14 * Math.abs(want), `erf(${x}) = ${erf(x)}`);
  }
  strictEqual(erf(0), 0);
  strictEqual(erf(7), 1);
  strictEqual(erf(-9), -1);
  ok(Number.isNaN(erf(NaN)));
  ok(Math.abs(erf(1e-8) - 2e-8 / Math.sqrt(Math.PI)) < 1e-22);
  // GELU(1) = Φ(1) = 0.8413447460685429; derivative by central differences
  ok(Math.abs(geluExact(1) - 0.8413447460685429) < 1e-15);
  for (const x of [-4, -1.3, -0.2, 0, 0.4, 1.1, 2.7, 5.5]) {
    const h = 1e-5;
    const fd = (geluExact(x + h) - geluExact(x - h)) / (2 * h);
    ok(Math.abs(fd - geluExactGrad(x)) < 1e-9, `gelu'(${x}): ${geluExactGrad(x)} vs ${fd}`);
  }
});

Deno.test("names: module paths, shapes, peft names and layout sizes", () => {
  strictEqual(modulePath(3, "query"), "roberta.encoder.layer.3.attention.self.query");
  strictEqual(modulePath(0, "value"), "roberta.encoder.layer.0.attention.self.value");
  strictEqual(modulePath(3, "attention.output.dense"), "roberta.encoder.layer.3.attention.output.dense");
  strictEqual(modulePath(3, "intermediate.dense"), "roberta.encoder.layer.3.intermediate.dense");
  strictEqual(modulePath(3, "output.dense"), "roberta.encoder.layer.3.output.dense");
  deepStrictEqual(loraNames(modulePath(1, "key")), {
    a: "base_model.model.roberta.encoder.layer.1.attention.self.key.lora_A.weight",
    b: "base_model.model.roberta.encoder.layer.1.attention.self.key.lora_B.weight",
  });
  const big = { hiddenSize: 1024, intermediateSize: 4096, numLayers: 24 };
  deepStrictEqual(moduleShape(big, "intermediate.dense"), { nOut: 4096, nIn: 1024 });
  deepStrictEqual(moduleShape(big, "output.dense"), { nOut: 1024, nIn: 4096 });
  deepStrictEqual(moduleShape(big, "key"), { nOut: 1024, nIn: 1024 });
  strictEqual(loraScale({ r: 4, alpha: 8, targets: [] }), 2);
  strictEqual(loraScale({ r: 4, alpha: 8, targets: [], rslora: true }), 4);
  // roberta-large, q/v, r = 8, 2 labels: 786,432 LoRA parameters and 1,051,650 head parameters (spec)
  const layout = adapterLayout(big, 2, { r: 8, alpha: 16, targets: ["value", "query"] });
  const size = (kind: string) =>
    layout.filter((t) => (kind === "lora" ? t.kind !== "head" : t.kind === "head"))
      .reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  strictEqual(size("lora"), 786432);
  strictEqual(size("head"), 1051650);
  strictEqual(layout[0].name, "base_model.model.roberta.encoder.layer.0.attention.self.query.lora_A.weight");
  strictEqual(layout[1].name, "base_model.model.roberta.encoder.layer.0.attention.self.query.lora_B.weight");
  strictEqual(layout[2].module, "roberta.encoder.layer.0.attention.self.value");
  deepStrictEqual(layout.slice(-4).map((t) => t.name), Object.values(HEAD_NAMES));
  throws(() => adapterLayout(big, 2, { r: 8, alpha: 16, targets: ["query", "query"] }), /listed twice/);
  throws(() => adapterLayout(big, 2, { r: 8, alpha: 16, targets: ["dense" as never] }), /not one of/);
  throws(() => adapterLayout(big, 0, { r: 8, alpha: 16, targets: [] }), /numLabels/);
  strictEqual(
    baseLayout({ ...big, vocabSize: 50265, maxPositionEmbeddings: 514, typeVocabSize: 1 }).length,
    5 + 24 * 16,
  );
});

Deno.test("reference: initAdapter follows peft init and is seeded", () => {
  const lora: LoraSettings = { r: 4, alpha: 8, targets: ["query", "intermediate.dense", "output.dense"] };
  const a = initAdapter(CFG, 3, lora, 42),
    b = initAdapter(CFG, 3, lora, 42),
    c = initAdapter(CFG, 3, lora, 43);
  deepStrictEqual(a, b);
  for (const t of adapterLayout(CFG, 3, lora)) {
    const v = a.get(t.name)!;
    strictEqual(v.length, t.shape.reduce((x, y) => x * y, 1), t.name);
    if (t.kind === "lora_A") {
      const bound = 1 / Math.sqrt(t.shape[1]);
      ok(v.every((x) => Math.abs(x) <= bound) && v.some((x) => Math.abs(x) > bound / 2), t.name);
      ok(relErr(v, c.get(t.name)!) > 0.1, `${t.name} does not depend on the seed`);
    } else if (t.kind === "lora_B" || t.shape.length === 1) {
      ok(v.every((x) => x === 0), `${t.name} should start at 0`);
    } else {
      const std = Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
      ok(std > 0.01 && std < 0.03, `${t.name}: std ${std}, expected about 0.02`);
    }
  }
});

Deno.test("reference: bad inputs give errors that name what is wrong", () => {
  const lora: LoraSettings = { r: 2, alpha: 4, targets: ["query"] };
  const base = randomBase(CFG, 31);
  const adapter = initAdapter(CFG, 2, lora, 32);
  const m: RefModel = { cfg: CFG, numLabels: 2, lora, base, adapter };
  const input = makeInput(33);
  const noW = new Map(base);
  noW.delete("roberta.encoder.layer.1.output.dense.weight");
  throws(
    () => refForward({ ...m, base: noW }, input),
    /"roberta\.encoder\.layer\.1\.output\.dense\.weight" is missing/,
  );
  const badShape = new Map(base);
  badShape.set("roberta.embeddings.LayerNorm.bias", new Float64Array(7));
  throws(
    () => refForward({ ...m, base: badShape }, input),
    /LayerNorm\.bias" has 7 elements, expected shape \[8\]/,
  );
  const badAdapter = new Map(adapter);
  badAdapter.set(loraNames(modulePath(0, "query")).b, new Float32Array(3));
  throws(
    () => refForward({ ...m, adapter: badAdapter }, input),
    /lora_B\.weight" has 3 elements, expected shape \[8, 2\]/,
  );
  throws(
    () => refLossAndGrads(m, { ...input, labels: [0, 2] }),
    /labels\[1\] = 2: expected a class index in \[0, 2\)/,
  );
  throws(() => refLossAndGrads(m, { ...input, labels: [0] }), /expected 2 labels/);
  const ids = input.inputIds.slice();
  ids[3] = 50;
  throws(() => refForward(m, { ...input, inputIds: ids }), /inputIds\[3\] = 50 is outside the vocabulary/);
  const path = modulePath(0, "query");
  throws(
    () => refForward(m, input, new Map([[path, { a: new Float64Array(8).fill(1), b: new Float64Array(7) }]])),
    /masks\["roberta\.encoder\.layer\.0\.attention\.self\.query"\]\.b: expected 8 entries, got 7/,
  );
  throws(
    () =>
      refForward(m, input, new Map([[path, { a: new Float64Array(8).fill(0.5), b: new Float64Array(8) }]])),
    /\.a: entry 0 is 0\.5, expected 0 or 1/,
  );
  throws(
    () =>
      refForward(
        m,
        input,
        new Map([[modulePath(0, "value"), { a: new Float64Array(8), b: new Float64Array(8) }]]),
      ),
    /not a LoRA target/,
  );
  throws(() => refForward({ ...m, cfg: { ...CFG, numHeads: 3 } }, input), /not divisible by numHeads 3/);
});
