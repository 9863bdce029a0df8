/**
 * Plain float64 TypeScript reference of Hugging Face `RobertaForSequenceClassification` and
 * `BertForSequenceClassification` with a peft LoRA adapter and FedLoDrop row/column masks, in evaluation mode
 * (no dropout of any kind). Forward and a hand-written backward (gradients for the trainable adapter only: LoRA
 * A/B of every target and the classification-head tensors: RoBERTa's four, BERT's two). It is the independent oracle the GPU model is tested against, written for
 * obviousness, not speed: explicit loops over Float64Array, tiny shapes only.
 *
 * Semantics (see ../shared/spec/roberta.md and fedlodrop.md):
 * - position ids: RoBERTa `pos = cumsum(id != pad) * (id != pad) + pad`; BERT `pos = t` (0, 1, …, padding
 *   included, as `BertEmbeddings` does with its `position_ids` buffer);
 * - embeddings: word[id] + position[pos] + token_type[type] → LayerNorm (biased variance, eps from the config),
 *   with type 0 everywhere unless the input gives `typeIds` (BERT: 1 on the second segment);
 * - post-LN encoder layers; attention adds {@link ATTENTION_MASK_VALUE} (= HF's `finfo(float32).min`) to the
 *   scores of padding keys. With the max-subtracted softmax used here, exp(masked − max) underflows to exactly 0
 *   whenever a row has at least one real key, so any large negative constant (e.g. −1e9) gives the same
 *   probabilities; a row whose keys are all padding becomes uniform in both cases;
 * - exact erf GELU; head on the first token: RoBERTa dense → tanh → out_proj (all trainable); BERT the frozen
 *   pooler dense → tanh, then the trainable classifier;
 * - loss: mean cross-entropy for numLabels > 1, mean squared error for numLabels == 1;
 * - LoRA on a target with masks m_A `[nIn]`, m_B `[nOut]`:
 *   y_o = Σ_i W[o,i]·x_i + b_o + s·m_B[o]·Σ_j B[o,j]·Σ_i A[j,i]·m_A[i]·x_i (no 1/(1−γ) rescaling).
 *
 * @example
 * ```ts
 * const base = randomBase(cfg, 1);
 * const adapter = initAdapter(cfg, 3, lora, 7);
 * const m: RefModel = { cfg, numLabels: 3, lora, base, adapter };
 * const { logits } = refForward(m, { inputIds, batch: 2, seqLen: 6 });
 * const { loss, grads } = refLossAndGrads(m, { inputIds, batch: 2, seqLen: 6, labels: [0, 2] });
 * ```
 * @module
 */
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import {
  adapterLayout,
  baseLayout,
  BERT_HEAD_NAMES,
  HEAD_NAMES,
  LORA_TARGETS,
  loraNames,
  loraScale,
  type LoraSettings,
  type LoraTarget,
  type ModelFamily,
  modulePath,
  moduleShape,
} from "./names.ts";

/** The encoder constants the reference reads (any object with these fields, e.g. model/config.ts's config). */
export interface EncoderConfigLike {
  /** Encoder family (default "roberta"). */
  modelType?: ModelFamily;
  /** Hidden size H. */
  hiddenSize: number;
  /** Number of encoder layers L. */
  numLayers: number;
  /** Attention heads (must divide H). */
  numHeads: number;
  /** Feed-forward size I. */
  intermediateSize: number;
  /** LayerNorm epsilon (1e-5 for RoBERTa checkpoints). */
  layerNormEps: number;
  /** Padding token id (1 for RoBERTa). */
  padTokenId: number;
  /** Rows of the word embedding. */
  vocabSize: number;
  /** Rows of the position embedding. */
  maxPositionEmbeddings: number;
  /** Rows of the token-type embedding (≥ 1). */
  typeVocabSize: number;
}

/** A tensor as the reference accepts it: float32 or float64, row-major. */
export type RefTensor = Float64Array | Float32Array;

/** The model the reference evaluates. */
export interface RefModel {
  /** Encoder constants. */
  cfg: EncoderConfigLike;
  /** Number of outputs (1 = regression). */
  numLabels: number;
  /** LoRA settings (targets, r, alpha, rsLoRA). */
  lora: LoraSettings;
  /** Frozen base weights under canonical Hugging Face names (see `baseLayout` in names.ts). */
  base: Map<string, RefTensor>;
  /** Trainable adapter under peft names: LoRA A/B of every target and the head (see `adapterLayout`). */
  adapter: Map<string, RefTensor>;
}

/** FedLoDrop masks of one module: m_A over the input features (columns of A), m_B over the outputs (rows of B). */
export interface RefModuleMask {
  /** `[nIn]`, entries 0 or 1. */
  a: RefTensor;
  /** `[nOut]`, entries 0 or 1. */
  b: RefTensor;
}

/** Masks by module path (see `modulePath`); a module with no entry is not masked (all ones). A Map works. */
export interface RefMasks {
  /** The masks of the module at `modulePath`, or undefined for all ones. */
  get(modulePath: string): RefModuleMask | undefined;
}

/** A batch of token ids, `[batch, seqLen]` row-major, right-padded with the pad id. */
export interface RefInput {
  /** Token ids, length batch·seqLen. */
  inputIds: Int32Array;
  /** Sequences in the batch. */
  batch: number;
  /** Tokens per sequence (including padding). */
  seqLen: number;
  /** Token type (segment) ids, length batch·seqLen, each < typeVocabSize (default all 0). */
  typeIds?: Int32Array;
}

/** A batch with labels: class indices (numLabels > 1) or real targets (numLabels == 1), length batch. */
export interface RefLabeledInput extends RefInput {
  /** One label per sequence. */
  labels: Float64Array | Int32Array | number[];
}

/** What {@link refForward} returns. */
export interface RefForwardResult {
  /** `[batch, numLabels]`. */
  logits: Float64Array;
  /** Like HF `output_hidden_states`: the embedding output then each layer's output, each `[batch·seqLen, H]`. */
  hiddenStates: Float64Array[];
}

/** What {@link refLossAndGrads} returns. */
export interface RefLossResult {
  /** Mean loss over the batch. */
  loss: number;
  /** `[batch, numLabels]`. */
  logits: Float64Array;
  /** Gradient of the loss for every adapter tensor (peft names), same shapes as the adapter. */
  grads: Map<string, Float64Array>;
}

/** The additive attention mask value for padding keys: HF's `torch.finfo(torch.float32).min`. */
export const ATTENTION_MASK_VALUE = -3.4028234663852886e38;

// ---------------------------------------------------------------------------------------------------------
// Scalar functions

/**
 * The error function in float64 (relative error ~1e-15). For |x| < 6 it sums the everywhere-positive series
 * erf(x) = 2/√π · e^(−x²) · Σ_n 2ⁿ x^(2n+1) / (1·3·…·(2n+1)) (no cancellation); beyond, 1 − erf(|x|) is below
 * half an ulp of 1 and the result is ±1.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax >= 6) return x > 0 ? 1 : -1;
  const x2 = ax * ax;
  let term = ax, sum = ax;
  for (let n = 1; term > sum * 1e-17; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
  }
  const v = (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
  return x < 0 ? -v : v;
}

/** Exact GELU: x·Φ(x) = 0.5·x·(1 + erf(x/√2)) (HF `hidden_act = "gelu"`). */
export function geluExact(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** d/dx of {@link geluExact}: Φ(x) + x·φ(x). */
export function geluExactGrad(x: number): number {
  return 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
}

/**
 * RoBERTa position ids: `pos = cumsum(id != pad) * (id != pad) + pad` per sequence. Throws when a position
 * reaches `maxPositionEmbeddings` (when given).
 *
 * @example
 * ```ts
 * positionIds(Int32Array.from([0, 5, 2, 1]), 1, 4, 1); // [2, 3, 4, 1]
 * ```
 */
export function positionIds(
  inputIds: Int32Array,
  batch: number,
  seqLen: number,
  padTokenId: number,
  maxPositionEmbeddings?: number,
): Int32Array {
  if (inputIds.length !== batch * seqLen) {
    throw new Error(
      `inputIds: expected batch·seqLen = ${batch}·${seqLen} = ${batch * seqLen} ids, got ${inputIds.length}`,
    );
  }
  const pos = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    let count = 0;
    for (let t = 0; t < seqLen; t++) {
      const i = b * seqLen + t;
      if (inputIds[i] !== padTokenId) {
        count++;
        pos[i] = count + padTokenId;
      } else {
        pos[i] = padTokenId;
      }
      if (maxPositionEmbeddings !== undefined && pos[i] >= maxPositionEmbeddings) {
        throw new Error(
          `inputIds: sequence ${b} has position id ${pos[i]} at token ${t}, but max_position_embeddings is ` +
            `${maxPositionEmbeddings} (at most ${maxPositionEmbeddings - padTokenId - 1} real tokens)`,
        );
      }
    }
  }
  return pos;
}

/**
 * BERT position ids: 0, 1, …, seqLen − 1 in every sequence (padding included). Throws when seqLen exceeds
 * `max_position_embeddings`.
 *
 * @example
 * ```ts
 * bertPositionIds(2, 3, 512); // [0, 1, 2, 0, 1, 2]
 * ```
 */
export function bertPositionIds(batch: number, seqLen: number, maxPositionEmbeddings: number): Int32Array {
  if (seqLen > maxPositionEmbeddings) {
    throw new Error(`seqLen ${seqLen} exceeds max_position_embeddings ${maxPositionEmbeddings}`);
  }
  const pos = new Int32Array(batch * seqLen);
  for (let i = 0; i < pos.length; i++) pos[i] = i % seqLen;
  return pos;
}

// ---------------------------------------------------------------------------------------------------------
// Resolved model: validated float64 tensors

interface LoraPart {
  path: string;
  nameA: string;
  nameB: string;
  r: number;
  s: number;
  A: Float64Array; // [r, nIn]
  B: Float64Array; // [nOut, r]
  mA: Float64Array; // [nIn]
  mB: Float64Array; // [nOut]
  gA: Float64Array;
  gB: Float64Array;
}

interface Linear {
  name: string;
  nOut: number;
  nIn: number;
  W: Float64Array; // [nOut, nIn]
  b: Float64Array; // [nOut]
  lora?: LoraPart;
}

interface LayerWeights {
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  ln1g: Float64Array;
  ln1b: Float64Array;
  inter: Linear;
  out: Linear;
  ln2g: Float64Array;
  ln2b: Float64Array;
}

interface Resolved {
  cfg: EncoderConfigLike;
  numLabels: number;
  word: Float64Array;
  pos: Float64Array;
  tokenType: Float64Array;
  embLnG: Float64Array;
  embLnB: Float64Array;
  layers: LayerWeights[];
  family: ModelFamily;
  /** RoBERTa's head dense layer (trainable) or BERT's pooler (frozen). */
  headDenseW: Float64Array;
  headDenseB: Float64Array;
  headOutW: Float64Array;
  headOutB: Float64Array;
  gHeadDenseW: Float64Array;
  gHeadDenseB: Float64Array;
  gHeadOutW: Float64Array;
  gHeadOutB: Float64Array;
}

function checkConfig(cfg: EncoderConfigLike): void {
  const ints: Exclude<keyof EncoderConfigLike, "modelType">[] = [
    "hiddenSize",
    "numLayers",
    "numHeads",
    "intermediateSize",
    "vocabSize",
    "maxPositionEmbeddings",
    "typeVocabSize",
  ];
  for (const k of ints) {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 1) {
      throw new Error(`config.${k}: expected an integer ≥ 1, got ${cfg[k]}`);
    }
  }
  if (cfg.modelType !== undefined && cfg.modelType !== "roberta" && cfg.modelType !== "bert") {
    throw new Error(`config.modelType: expected "roberta" or "bert", got ${cfg.modelType}`);
  }
  if (!Number.isInteger(cfg.padTokenId) || cfg.padTokenId < 0) {
    throw new Error(`config.padTokenId: expected an integer ≥ 0, got ${cfg.padTokenId}`);
  }
  if (!(cfg.layerNormEps > 0)) throw new Error(`config.layerNormEps: expected > 0, got ${cfg.layerNormEps}`);
  if (cfg.hiddenSize % cfg.numHeads !== 0) {
    throw new Error(`config: hiddenSize ${cfg.hiddenSize} is not divisible by numHeads ${cfg.numHeads}`);
  }
}

function tensor(map: Map<string, RefTensor>, what: string, name: string, shape: number[]): Float64Array {
  const t = map.get(name);
  const n = shape.reduce((a, b) => a * b, 1);
  if (t === undefined) {
    throw new Error(`${what}: tensor "${name}" is missing (expected shape [${shape.join(", ")}])`);
  }
  if (t.length !== n) {
    throw new Error(
      `${what}: tensor "${name}" has ${t.length} elements, expected shape [${
        shape.join(", ")
      }] = ${n} elements`,
    );
  }
  return Float64Array.from(t);
}

function maskVector(v: RefTensor | undefined, n: number, what: string): Float64Array {
  if (v === undefined) return new Float64Array(n).fill(1);
  if (v.length !== n) throw new Error(`${what}: expected ${n} entries, got ${v.length}`);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (v[i] !== 0 && v[i] !== 1) throw new Error(`${what}: entry ${i} is ${v[i]}, expected 0 or 1`);
    out[i] = v[i];
  }
  return out;
}

function resolve(m: RefModel, masks?: RefMasks): Resolved {
  const cfg = m.cfg;
  checkConfig(cfg);
  const layout = adapterLayout(cfg, m.numLabels, m.lora);
  const known = new Set(layout.map((t) => t.name));
  for (const name of m.adapter.keys()) {
    if (!known.has(name)) throw new Error(`adapter: unexpected tensor "${name}" (not in the adapter layout)`);
  }
  const s = loraScale(m.lora);
  const targets = new Set<LoraTarget>(m.lora.targets);
  const paths = new Set<string>();
  const H = cfg.hiddenSize, family = cfg.modelType ?? "roberta";
  const base = (name: string, shape: number[]) => tensor(m.base, "base", name, shape);
  const adapter = (name: string, shape: number[]) => tensor(m.adapter, "adapter", name, shape);

  const linear = (layer: number, target: LoraTarget): Linear => {
    const path = modulePath(layer, target, family);
    const { nOut, nIn } = moduleShape(cfg, target);
    const lin: Linear = {
      name: path,
      nOut,
      nIn,
      W: base(`${path}.weight`, [nOut, nIn]),
      b: base(`${path}.bias`, [nOut]),
    };
    const mk = masks?.get(path);
    if (targets.has(target)) {
      paths.add(path);
      const names = loraNames(path);
      lin.lora = {
        path,
        nameA: names.a,
        nameB: names.b,
        r: m.lora.r,
        s,
        A: adapter(names.a, [m.lora.r, nIn]),
        B: adapter(names.b, [nOut, m.lora.r]),
        mA: maskVector(mk?.a, nIn, `masks["${path}"].a`),
        mB: maskVector(mk?.b, nOut, `masks["${path}"].b`),
        gA: new Float64Array(m.lora.r * nIn),
        gB: new Float64Array(nOut * m.lora.r),
      };
    } else if (mk !== undefined) {
      throw new Error(
        `masks: module "${path}" has masks but is not a LoRA target (${m.lora.targets.join(", ")})`,
      );
    }
    return lin;
  };

  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `${family}.encoder.layer.${l}`;
    layers.push({
      q: linear(l, "query"),
      k: linear(l, "key"),
      v: linear(l, "value"),
      o: linear(l, "attention.output.dense"),
      ln1g: base(`${p}.attention.output.LayerNorm.weight`, [H]),
      ln1b: base(`${p}.attention.output.LayerNorm.bias`, [H]),
      inter: linear(l, "intermediate.dense"),
      out: linear(l, "output.dense"),
      ln2g: base(`${p}.output.LayerNorm.weight`, [H]),
      ln2b: base(`${p}.output.LayerNorm.bias`, [H]),
    });
  }
  if (masks instanceof Map) {
    for (const key of masks.keys()) {
      if (!paths.has(key)) throw new Error(`masks: "${key}" is not a LoRA module path of this model`);
    }
  }
  const nl = m.numLabels, e = `${family}.embeddings`, bert = family === "bert";
  return {
    cfg,
    numLabels: nl,
    word: base(`${e}.word_embeddings.weight`, [cfg.vocabSize, H]),
    pos: base(`${e}.position_embeddings.weight`, [cfg.maxPositionEmbeddings, H]),
    tokenType: base(`${e}.token_type_embeddings.weight`, [cfg.typeVocabSize, H]),
    embLnG: base(`${e}.LayerNorm.weight`, [H]),
    embLnB: base(`${e}.LayerNorm.bias`, [H]),
    layers,
    family,
    headDenseW: bert ? base("bert.pooler.dense.weight", [H, H]) : adapter(HEAD_NAMES.denseWeight, [H, H]),
    headDenseB: bert ? base("bert.pooler.dense.bias", [H]) : adapter(HEAD_NAMES.denseBias, [H]),
    headOutW: adapter(bert ? BERT_HEAD_NAMES.outWeight : HEAD_NAMES.outWeight, [nl, H]),
    headOutB: adapter(bert ? BERT_HEAD_NAMES.outBias : HEAD_NAMES.outBias, [nl]),
    gHeadDenseW: new Float64Array(H * H),
    gHeadDenseB: new Float64Array(H),
    gHeadOutW: new Float64Array(nl * H),
    gHeadOutB: new Float64Array(nl),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Building blocks, forward and backward

/** y = x Wᵀ + b + s·((x⊙m_A) Aᵀ)(m_B⊙B)ᵀ for `rows` rows; also returns u = (x⊙m_A) Aᵀ `[rows, r]`. */
function linearForward(lin: Linear, x: Float64Array, rows: number): { y: Float64Array; u?: Float64Array } {
  const { nOut, nIn, W, b } = lin;
  const y = new Float64Array(rows * nOut);
  for (let n = 0; n < rows; n++) {
    for (let o = 0; o < nOut; o++) {
      let acc = b[o];
      for (let i = 0; i < nIn; i++) acc += x[n * nIn + i] * W[o * nIn + i];
      y[n * nOut + o] = acc;
    }
  }
  const L = lin.lora;
  if (!L) return { y };
  const r = L.r;
  const u = new Float64Array(rows * r);
  for (let n = 0; n < rows; n++) {
    for (let j = 0; j < r; j++) {
      let acc = 0;
      for (let i = 0; i < nIn; i++) acc += L.A[j * nIn + i] * L.mA[i] * x[n * nIn + i];
      u[n * r + j] = acc;
    }
    for (let o = 0; o < nOut; o++) {
      let acc = 0;
      for (let j = 0; j < r; j++) acc += L.B[o * r + j] * u[n * r + j];
      y[n * nOut + o] += L.s * L.mB[o] * acc;
    }
  }
  return { y, u };
}

/** Returns dx for dy; accumulates the LoRA gradients (dropped rows of B / columns of A get exactly 0). */
function linearBackward(
  lin: Linear,
  x: Float64Array,
  u: Float64Array | undefined,
  dy: Float64Array,
  rows: number,
): Float64Array {
  const { nOut, nIn, W } = lin;
  const dx = new Float64Array(rows * nIn);
  for (let n = 0; n < rows; n++) {
    for (let i = 0; i < nIn; i++) {
      let acc = 0;
      for (let o = 0; o < nOut; o++) acc += dy[n * nOut + o] * W[o * nIn + i];
      dx[n * nIn + i] = acc;
    }
  }
  const L = lin.lora;
  if (!L || !u) return dx;
  const r = L.r;
  // dB[o,j] = s·m_B[o]·Σ_n dy[n,o]·u[n,j]
  for (let o = 0; o < nOut; o++) {
    if (L.mB[o] === 0) continue; // dropped row: gradient stays exactly 0
    for (let j = 0; j < r; j++) {
      let acc = 0;
      for (let n = 0; n < rows; n++) acc += dy[n * nOut + o] * u[n * r + j];
      L.gB[o * r + j] += L.s * L.mB[o] * acc;
    }
  }
  // dv[n,j] = s·Σ_o dy[n,o]·m_B[o]·B[o,j]
  const dv = new Float64Array(rows * r);
  for (let n = 0; n < rows; n++) {
    for (let j = 0; j < r; j++) {
      let acc = 0;
      for (let o = 0; o < nOut; o++) acc += dy[n * nOut + o] * L.mB[o] * L.B[o * r + j];
      dv[n * r + j] = L.s * acc;
    }
  }
  // dA[j,i] = m_A[i]·Σ_n dv[n,j]·x[n,i];  dx[n,i] += m_A[i]·Σ_j dv[n,j]·A[j,i]
  for (let j = 0; j < r; j++) {
    for (let i = 0; i < nIn; i++) {
      if (L.mA[i] === 0) continue; // dropped column: gradient stays exactly 0
      let acc = 0;
      for (let n = 0; n < rows; n++) acc += dv[n * r + j] * x[n * nIn + i];
      L.gA[j * nIn + i] += L.mA[i] * acc;
    }
  }
  for (let n = 0; n < rows; n++) {
    for (let i = 0; i < nIn; i++) {
      let acc = 0;
      for (let j = 0; j < r; j++) acc += dv[n * r + j] * L.A[j * nIn + i];
      dx[n * nIn + i] += L.mA[i] * acc;
    }
  }
  return dx;
}

interface LnCache {
  xhat: Float64Array;
  rstd: Float64Array;
}

/** Row-wise LayerNorm with biased variance. */
function layerNormForward(
  x: Float64Array,
  rows: number,
  width: number,
  g: Float64Array,
  b: Float64Array,
  eps: number,
): { y: Float64Array; cache: LnCache } {
  const y = new Float64Array(rows * width);
  const xhat = new Float64Array(rows * width);
  const rstd = new Float64Array(rows);
  for (let n = 0; n < rows; n++) {
    let mean = 0;
    for (let c = 0; c < width; c++) mean += x[n * width + c];
    mean /= width;
    let variance = 0;
    for (let c = 0; c < width; c++) variance += (x[n * width + c] - mean) ** 2;
    variance /= width;
    const rs = 1 / Math.sqrt(variance + eps);
    rstd[n] = rs;
    for (let c = 0; c < width; c++) {
      const h = (x[n * width + c] - mean) * rs;
      xhat[n * width + c] = h;
      y[n * width + c] = h * g[c] + b[c];
    }
  }
  return { y, cache: { xhat, rstd } };
}

/** dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)) with ĝ = dy⊙g. */
function layerNormBackward(
  dy: Float64Array,
  cache: LnCache,
  rows: number,
  width: number,
  g: Float64Array,
): Float64Array {
  const dx = new Float64Array(rows * width);
  for (let n = 0; n < rows; n++) {
    let m1 = 0, m2 = 0;
    for (let c = 0; c < width; c++) {
      const gh = dy[n * width + c] * g[c];
      m1 += gh;
      m2 += gh * cache.xhat[n * width + c];
    }
    m1 /= width;
    m2 /= width;
    for (let c = 0; c < width; c++) {
      const gh = dy[n * width + c] * g[c];
      dx[n * width + c] = cache.rstd[n] * (gh - m1 - cache.xhat[n * width + c] * m2);
    }
  }
  return dx;
}

interface AttnShape {
  batch: number;
  seqLen: number;
  hidden: number;
  heads: number;
}

/** Multi-head attention: ctx = softmax(q kᵀ/√d + mask) v per (sequence, head); returns ctx and the probs. */
function attentionForward(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  keyIsPad: Uint8Array,
  sh: AttnShape,
): { ctx: Float64Array; probs: Float64Array } {
  const { batch: B, seqLen: T, hidden: H, heads: NH } = sh;
  const d = H / NH;
  const scale = 1 / Math.sqrt(d);
  const ctx = new Float64Array(B * T * H);
  const probs = new Float64Array(B * NH * T * T);
  const row = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < T; i++) {
        let max = -Infinity;
        for (let j = 0; j < T; j++) {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[(b * T + i) * H + h * d + c] * k[(b * T + j) * H + h * d + c];
          row[j] = dot * scale + (keyIsPad[b * T + j] ? ATTENTION_MASK_VALUE : 0);
          if (row[j] > max) max = row[j];
        }
        let sum = 0;
        for (let j = 0; j < T; j++) {
          row[j] = Math.exp(row[j] - max);
          sum += row[j];
        }
        const pBase = ((b * NH + h) * T + i) * T;
        for (let j = 0; j < T; j++) probs[pBase + j] = row[j] / sum;
        for (let c = 0; c < d; c++) {
          let acc = 0;
          for (let j = 0; j < T; j++) acc += probs[pBase + j] * v[(b * T + j) * H + h * d + c];
          ctx[(b * T + i) * H + h * d + c] = acc;
        }
      }
    }
  }
  return { ctx, probs };
}

/** Backward of {@link attentionForward}: dq, dk, dv from dctx. */
function attentionBackward(
  dctx: Float64Array,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  probs: Float64Array,
  sh: AttnShape,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { batch: B, seqLen: T, hidden: H, heads: NH } = sh;
  const d = H / NH;
  const scale = 1 / Math.sqrt(d);
  const dq = new Float64Array(B * T * H);
  const dk = new Float64Array(B * T * H);
  const dv = new Float64Array(B * T * H);
  const dp = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < T; i++) {
        const pBase = ((b * NH + h) * T + i) * T;
        const gi = (b * T + i) * H + h * d;
        // dp_ij = dctx_i · v_j ; dv_j += p_ij dctx_i
        let dot = 0;
        for (let j = 0; j < T; j++) {
          const vj = (b * T + j) * H + h * d;
          let acc = 0;
          for (let c = 0; c < d; c++) {
            acc += dctx[gi + c] * v[vj + c];
            dv[vj + c] += probs[pBase + j] * dctx[gi + c];
          }
          dp[j] = acc;
          dot += probs[pBase + j] * acc;
        }
        // ds_ij = p_ij (dp_ij − Σ_k p_ik dp_ik); dq_i += scale ds_ij k_j; dk_j += scale ds_ij q_i
        for (let j = 0; j < T; j++) {
          const ds = probs[pBase + j] * (dp[j] - dot) * scale;
          const kj = (b * T + j) * H + h * d;
          for (let c = 0; c < d; c++) {
            dq[gi + c] += ds * k[kj + c];
            dk[kj + c] += ds * q[gi + c];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

function addInto(dst: Float64Array, src: Float64Array): void {
  for (let i = 0; i < dst.length; i++) dst[i] += src[i];
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Whole model

interface LayerCache {
  x: Float64Array;
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  uq?: Float64Array;
  uk?: Float64Array;
  uv?: Float64Array;
  probs: Float64Array;
  ctx: Float64Array;
  uo?: Float64Array;
  ln1: LnCache;
  a: Float64Array;
  pre: Float64Array; // intermediate pre-activation [N, I]
  ui?: Float64Array;
  act: Float64Array; // gelu(pre)
  uout?: Float64Array;
  ln2: LnCache;
}

interface ForwardCache {
  logits: Float64Array;
  hiddenStates: Float64Array[];
  layers: LayerCache[];
  cls: Float64Array; // [batch, H]
  z: Float64Array; // tanh(dense(cls)) [batch, H]
}

function checkInput(cfg: EncoderConfigLike, input: RefInput): void {
  const { batch, seqLen, inputIds } = input;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new Error(`input.batch: expected an integer ≥ 1, got ${batch}`);
  }
  if (!Number.isInteger(seqLen) || seqLen < 1) {
    throw new Error(`input.seqLen: expected an integer ≥ 1, got ${seqLen}`);
  }
  if (!(inputIds instanceof Int32Array)) throw new Error(`input.inputIds: expected an Int32Array`);
  if (inputIds.length !== batch * seqLen) {
    throw new Error(`input.inputIds: expected batch·seqLen = ${batch * seqLen} ids, got ${inputIds.length}`);
  }
  if (input.typeIds !== undefined) {
    if (!(input.typeIds instanceof Int32Array) || input.typeIds.length !== batch * seqLen) {
      throw new Error(`input.typeIds: expected an Int32Array of batch·seqLen = ${batch * seqLen} ids`);
    }
    for (let i = 0; i < input.typeIds.length; i++) {
      const t = input.typeIds[i];
      if (!(t >= 0 && t < cfg.typeVocabSize)) {
        throw new Error(`input.typeIds[${i}] = ${t} is outside [0, type_vocab_size ${cfg.typeVocabSize})`);
      }
    }
  }
  for (let i = 0; i < inputIds.length; i++) {
    if (inputIds[i] < 0 || inputIds[i] >= cfg.vocabSize) {
      throw new Error(
        `input.inputIds[${i}] = ${inputIds[i]} is outside the vocabulary [0, ${cfg.vocabSize})`,
      );
    }
  }
}

function forward(R: Resolved, input: RefInput): ForwardCache {
  const cfg = R.cfg;
  checkInput(cfg, input);
  const { batch: B, seqLen: T, inputIds } = input;
  const H = cfg.hiddenSize, I = cfg.intermediateSize, N = B * T, eps = cfg.layerNormEps;
  const sh: AttnShape = { batch: B, seqLen: T, hidden: H, heads: cfg.numHeads };
  const pos = R.family === "bert"
    ? bertPositionIds(B, T, cfg.maxPositionEmbeddings)
    : positionIds(inputIds, B, T, cfg.padTokenId, cfg.maxPositionEmbeddings);
  const types = input.typeIds ?? new Int32Array(N);
  const keyIsPad = new Uint8Array(N);
  for (let i = 0; i < N; i++) keyIsPad[i] = inputIds[i] === cfg.padTokenId ? 1 : 0;

  const emb = new Float64Array(N * H);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < H; c++) {
      emb[n * H + c] = R.word[inputIds[n] * H + c] + R.pos[pos[n] * H + c] + R.tokenType[types[n] * H + c];
    }
  }
  let x = layerNormForward(emb, N, H, R.embLnG, R.embLnB, eps).y;
  const hiddenStates = [x];
  const layers: LayerCache[] = [];
  for (const L of R.layers) {
    const q = linearForward(L.q, x, N), k = linearForward(L.k, x, N), v = linearForward(L.v, x, N);
    const { ctx, probs } = attentionForward(q.y, k.y, v.y, keyIsPad, sh);
    const o = linearForward(L.o, ctx, N);
    const ln1 = layerNormForward(add(x, o.y), N, H, L.ln1g, L.ln1b, eps);
    const a = ln1.y;
    const inter = linearForward(L.inter, a, N);
    const act = new Float64Array(N * I);
    for (let i = 0; i < act.length; i++) act[i] = geluExact(inter.y[i]);
    const out = linearForward(L.out, act, N);
    const ln2 = layerNormForward(add(a, out.y), N, H, L.ln2g, L.ln2b, eps);
    layers.push({
      x,
      q: q.y,
      k: k.y,
      v: v.y,
      uq: q.u,
      uk: k.u,
      uv: v.u,
      probs,
      ctx,
      uo: o.u,
      ln1: ln1.cache,
      a,
      pre: inter.y,
      ui: inter.u,
      act,
      uout: out.u,
      ln2: ln2.cache,
    });
    x = ln2.y;
    hiddenStates.push(x);
  }

  // Head on the first token: dense → tanh → out_proj (BERT: pooler dense → tanh → classifier).
  const nl = R.numLabels;
  const cls = new Float64Array(B * H);
  for (let b = 0; b < B; b++) for (let c = 0; c < H; c++) cls[b * H + c] = x[b * T * H + c];
  const z = new Float64Array(B * H);
  for (let b = 0; b < B; b++) {
    for (let o = 0; o < H; o++) {
      let acc = R.headDenseB[o];
      for (let c = 0; c < H; c++) acc += cls[b * H + c] * R.headDenseW[o * H + c];
      z[b * H + o] = Math.tanh(acc);
    }
  }
  const logits = new Float64Array(B * nl);
  for (let b = 0; b < B; b++) {
    for (let o = 0; o < nl; o++) {
      let acc = R.headOutB[o];
      for (let c = 0; c < H; c++) acc += z[b * H + c] * R.headOutW[o * H + c];
      logits[b * nl + o] = acc;
    }
  }
  return { logits, hiddenStates, layers, cls, z };
}

/**
 * Evaluation-mode forward pass: logits `[batch, numLabels]` and the hidden states (embedding output and each
 * layer's output). `masks` applies FedLoDrop masks per LoRA module (absent = all ones).
 */
export function refForward(m: RefModel, input: RefInput, masks?: RefMasks): RefForwardResult {
  const R = resolve(m, masks);
  const f = forward(R, input);
  return { logits: f.logits, hiddenStates: f.hiddenStates };
}

/**
 * Mean loss over the batch (cross-entropy for numLabels > 1, squared error for numLabels == 1) and its gradient
 * for every adapter tensor, by a hand-written backward pass in evaluation mode. Masked (dropped) columns of A
 * and rows of B get gradient exactly 0.
 */
export function refLossAndGrads(m: RefModel, input: RefLabeledInput, masks?: RefMasks): RefLossResult {
  const R = resolve(m, masks);
  const cfg = R.cfg;
  const { batch: B, seqLen: T } = input;
  const nl = R.numLabels;
  const labels = input.labels;
  if (labels === undefined || labels.length !== B) {
    throw new Error(`input.labels: expected ${B} labels (one per sequence), got ${labels?.length}`);
  }
  for (let b = 0; b < B; b++) {
    const y = labels[b];
    if (nl > 1 && !(Number.isInteger(y) && y >= 0 && y < nl)) {
      throw new Error(`input.labels[${b}] = ${y}: expected a class index in [0, ${nl})`);
    }
    if (nl === 1 && !Number.isFinite(y)) {
      throw new Error(`input.labels[${b}] = ${y}: expected a finite number`);
    }
  }
  const f = forward(R, input);
  const H = cfg.hiddenSize, N = B * T;
  const sh: AttnShape = { batch: B, seqLen: T, hidden: H, heads: cfg.numHeads };

  // Loss and dlogits.
  let loss = 0;
  const dlogits = new Float64Array(B * nl);
  for (let b = 0; b < B; b++) {
    if (nl === 1) {
      const diff = f.logits[b] - labels[b];
      loss += diff * diff;
      dlogits[b] = (2 * diff) / B;
    } else {
      let max = -Infinity;
      for (let o = 0; o < nl; o++) max = Math.max(max, f.logits[b * nl + o]);
      let sum = 0;
      for (let o = 0; o < nl; o++) sum += Math.exp(f.logits[b * nl + o] - max);
      const lse = max + Math.log(sum);
      loss += lse - f.logits[b * nl + labels[b]];
      for (let o = 0; o < nl; o++) {
        dlogits[b * nl + o] = (Math.exp(f.logits[b * nl + o] - lse) - (o === labels[b] ? 1 : 0)) / B;
      }
    }
  }
  loss /= B;

  // Head backward.
  const dz = new Float64Array(B * H);
  for (let b = 0; b < B; b++) {
    for (let o = 0; o < nl; o++) {
      const g = dlogits[b * nl + o];
      R.gHeadOutB[o] += g;
      for (let c = 0; c < H; c++) {
        R.gHeadOutW[o * H + c] += g * f.z[b * H + c];
        dz[b * H + c] += g * R.headOutW[o * H + c];
      }
    }
  }
  let dx = new Float64Array(N * H);
  for (let b = 0; b < B; b++) {
    for (let o = 0; o < H; o++) {
      const zz = f.z[b * H + o];
      const dpre = dz[b * H + o] * (1 - zz * zz);
      R.gHeadDenseB[o] += dpre; // BERT: the frozen pooler's gradient, computed but not returned
      for (let c = 0; c < H; c++) {
        R.gHeadDenseW[o * H + c] += dpre * f.cls[b * H + c];
        dx[b * T * H + c] += dpre * R.headDenseW[o * H + c];
      }
    }
  }

  // Encoder layers in reverse.
  for (let l = R.layers.length - 1; l >= 0; l--) {
    const L = R.layers[l], C = f.layers[l];
    const dsum2 = layerNormBackward(dx, C.ln2, N, H, L.ln2g);
    const da = Float64Array.from(dsum2); // residual branch
    const dact = linearBackward(L.out, C.act, C.uout, dsum2, N);
    const dpre = new Float64Array(dact.length);
    for (let i = 0; i < dpre.length; i++) dpre[i] = dact[i] * geluExactGrad(C.pre[i]);
    addInto(da, linearBackward(L.inter, C.a, C.ui, dpre, N));
    const dsum1 = layerNormBackward(da, C.ln1, N, H, L.ln1g);
    const dxl = Float64Array.from(dsum1); // residual branch
    const dctx = linearBackward(L.o, C.ctx, C.uo, dsum1, N);
    const { dq, dk, dv } = attentionBackward(dctx, C.q, C.k, C.v, C.probs, sh);
    addInto(dxl, linearBackward(L.q, C.x, C.uq, dq, N));
    addInto(dxl, linearBackward(L.k, C.x, C.uk, dk, N));
    addInto(dxl, linearBackward(L.v, C.x, C.uv, dv, N));
    dx = dxl;
  }

  const grads = new Map<string, Float64Array>();
  for (const L of R.layers) {
    for (const lin of [L.q, L.k, L.v, L.o, L.inter, L.out]) {
      if (!lin.lora) continue;
      grads.set(lin.lora.nameA, lin.lora.gA);
      grads.set(lin.lora.nameB, lin.lora.gB);
    }
  }
  if (R.family === "bert") {
    grads.set(BERT_HEAD_NAMES.outWeight, R.gHeadOutW);
    grads.set(BERT_HEAD_NAMES.outBias, R.gHeadOutB);
  } else {
    grads.set(HEAD_NAMES.denseWeight, R.gHeadDenseW);
    grads.set(HEAD_NAMES.denseBias, R.gHeadDenseB);
    grads.set(HEAD_NAMES.outWeight, R.gHeadOutW);
    grads.set(HEAD_NAMES.outBias, R.gHeadOutB);
  }
  return { loss, logits: f.logits, grads };
}

// ---------------------------------------------------------------------------------------------------------
// Initialisation

/**
 * peft-style initial adapter, every tensor of `adapterLayout` from `KeyedRandom([seed, Purpose.init, 1000 + index])`
 * (index = position in the layout): A ~ U(−1/√nIn, 1/√nIn) (kaiming_uniform with a = √5), B = 0, head weights
 * N(0, 0.02²), head biases 0.
 *
 * @example
 * ```ts
 * const adapter = initAdapter(cfg, 2, { r: 4, alpha: 8, targets: ["query", "value"] }, 42);
 * ```
 */
export function initAdapter(
  cfg: EncoderConfigLike,
  numLabels: number,
  lora: LoraSettings,
  seed: number,
): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  adapterLayout(cfg, numLabels, lora).forEach((t, index) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    const rnd = new KeyedRandom([seed, Purpose.init, 1000 + index]);
    if (t.kind === "lora_A") {
      const bound = 1 / Math.sqrt(t.shape[1]);
      for (let i = 0; i < n; i++) v[i] = -bound + 2 * bound * rnd.uniform();
    } else if (t.kind === "head" && t.shape.length === 2) {
      for (let i = 0; i < n; i++) v[i] = 0.02 * rnd.normal();
    } // lora_B and head biases stay 0
    out.set(t.name, v);
  });
  return out;
}

/**
 * Small random base weights under the canonical names, for tests: embeddings U(−0.5, 0.5), linear weights
 * U(−√3/√nIn, √3/√nIn) (unit-variance outputs), biases U(−0.1, 0.1), LayerNorm weight 1 + U(−0.1, 0.1) and
 * bias U(−0.1, 0.1). Every value is float32-representable, so a GPU model can load exactly the same weights.
 * Tensor `index` of `baseLayout(cfg)` draws from `KeyedRandom([seed, Purpose.test, 3000 + index])`.
 */
export function randomBase(cfg: EncoderConfigLike, seed: number): Map<string, Float64Array> {
  checkConfig(cfg);
  const out = new Map<string, Float64Array>();
  baseLayout(cfg).forEach((t, index) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const rnd = new KeyedRandom([seed, Purpose.test, 3000 + index]);
    const sym = () => 2 * rnd.uniform() - 1;
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let x: number;
      if (t.name.endsWith("LayerNorm.weight")) x = 1 + 0.1 * sym();
      else if (t.name.endsWith("LayerNorm.bias") || t.name.endsWith(".bias")) x = 0.1 * sym();
      else if (/^(roberta|bert)\.embeddings\./.test(t.name)) x = 0.5 * sym();
      else x = (Math.sqrt(3) / Math.sqrt(t.shape[1])) * sym();
      v[i] = Math.fround(x);
    }
    out.set(t.name, v);
  });
  return out;
}

/** All LoRA module paths of a model with these settings, layer by layer in {@link LORA_TARGETS} order. */
export function loraModulePaths(
  cfg: { numLayers: number; modelType?: ModelFamily },
  lora: LoraSettings,
): string[] {
  const out: string[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    for (const t of LORA_TARGETS) {
      if (lora.targets.includes(t)) out.push(modulePath(l, t, cfg.modelType ?? "roberta"));
    }
  }
  return out;
}
