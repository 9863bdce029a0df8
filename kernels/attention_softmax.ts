/**
 * Attention softmax over the key axis of scores [batch, heads, seq, seq] with a key padding mask
 * keyMask [batch, seq] (1 = real token, 0 = padding), fused with attention-probability dropout, and its
 * backward pass. The 1/sqrt(headDim) scale is applied by the caller (gemm alpha).
 *
 * Masking: padded keys get probability exactly 0 (as with an additive −∞ mask); a row whose keys are all
 * padding becomes uniform 1/seq, which is what HF's additive `finfo.min` mask produces — never NaN.
 * One invocation per (batch, head, query) row, looping over the keys (seq ≤ 512).
 *
 * Profiler convention: forward flops 5 per score (mask, max, exp, sum, divide; +1 with dropout), bytes
 * 4·(2 or 3)·scores + mask; backward flops 5 per score, bytes 4·3·scores.
 * @module
 */
import type { Recorder } from "./recorder.ts";
import { RNG_WGSL } from "./rng.ts";
import { linearGrid, requireCount, requireDistinct, requireElements } from "./elementwise.ts";
import { type DropoutKey, requireDropout } from "./dropout.ts";
import { canStageFlat, FLAT_TEXEL_WGSL, stageFlat } from "./texture_stage.ts";

const WG = 64;

const FORWARD_WGSL = (withDropout: boolean) =>
  (withDropout ? RNG_WGSL : "") + `
struct P { n: u32, stride: u32, seq: u32, rowsPerBatch: u32, queries: u32, k0: u32, k1: u32, k2: u32, k3: u32, p: f32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
// flat index of this row's first score in the whole [batch, heads, seq, seq] tensor: the dropout masks' key
fn hash_base(r: u32) -> u32 { return ((r / p.queries) * p.seq + r % p.queries) * p.seq; }
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> keyMask: array<f32>;
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;
${withDropout ? "@group(0) @binding(4) var<storage, read_write> probsDropped: array<f32>;" : ""}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let r = g.x + g.y * p.stride;
  if (r >= p.n) { return; }
  let base = r * p.seq;
  let hbase = hash_base(r);
  let mbase = (r / p.rowsPerBatch) * p.seq;
  var mx = -3.4028234663852886e38;
  var real = 0u;
  for (var j = 0u; j < p.seq; j++) {
    if (keyMask[mbase + j] != 0.0) { mx = max(mx, scores[base + j]); real++; }
  }
  var sum = 0.0;
  for (var j = 0u; j < p.seq; j++) {
    var e = 0.0;
    if (keyMask[mbase + j] != 0.0) { e = exp(scores[base + j] - mx); }
    probs[base + j] = e;
    sum += e;
  }
  // all keys padded: uniform row (HF's additive finfo.min mask gives the same)
  let allPad = real == 0u;
  let inv = select(1.0 / sum, 0.0, allPad);
  let u = 1.0 / f32(p.seq);
  for (var j = 0u; j < p.seq; j++) {
    let pr = select(probs[base + j] * inv, u, allPad);
    probs[base + j] = pr;
    ${
    withDropout
      ? "probsDropped[base + j] = select(0.0, pr * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, hbase + j));"
      : ""
  }
  }
}`;

const BACKWARD_WGSL = (withDropout: boolean) =>
  (withDropout ? RNG_WGSL : "") + `
struct P { n: u32, stride: u32, seq: u32, queries: u32, k0: u32, k1: u32, k2: u32, k3: u32, p: f32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
// flat index of this row's first score in the whole [batch, heads, seq, seq] tensor: the dropout masks' key
fn hash_base(r: u32) -> u32 { return ((r / p.queries) * p.seq + r % p.queries) * p.seq; }
@group(0) @binding(1) var<storage, read> dProbsDropped: array<f32>;
@group(0) @binding(2) var<storage, read> probs: array<f32>;
@group(0) @binding(3) var<storage, read_write> dScores: array<f32>;
fn grad_probs(i: u32, h: u32) -> f32 {
  ${
    withDropout
      ? "return select(0.0, dProbsDropped[i] * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, h));"
      : "return dProbsDropped[i];"
  }
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let r = g.x + g.y * p.stride;
  if (r >= p.n) { return; }
  let base = r * p.seq;
  let hbase = hash_base(r);
  var dot = 0.0;
  for (var j = 0u; j < p.seq; j++) { dot += grad_probs(base + j, hbase + j) * probs[base + j]; }
  for (var j = 0u; j < p.seq; j++) {
    dScores[base + j] = probs[base + j] * (grad_probs(base + j, hbase + j) - dot);
  }
}`;

/** `stmt` repeated for the components x, y, z, w with `$c` replaced. */
function perComponent(stmt: string): string {
  return ["x", "y", "z", "w"].map((c) => stmt.replaceAll("$c", c)).join("\n");
}

// The same arithmetic in the same order with scores, keyMask (forward), dProbsDropped and probs (backward) read
// from flat-staged textures (texture_stage.ts) and the outputs written as vec4 (seq % 4 == 0): on llvmpipe
// scalar storage-buffer accesses cost ~10 ns per lane, texture loads and vec4 stores are vectorised. The
// forward recomputes exp in its last loop instead of reading the unnormalised probabilities back.
const FORWARD_TEX_WGSL = (withDropout: boolean) =>
  (withDropout ? RNG_WGSL : "") + FLAT_TEXEL_WGSL + `
struct P { n: u32, stride: u32, seq: u32, rowsPerBatch: u32, queries: u32, k0: u32, k1: u32, k2: u32, k3: u32, p: f32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
// flat index of this row's first score in the whole [batch, heads, seq, seq] tensor: the dropout masks' key
fn hash_base(r: u32) -> u32 { return ((r / p.queries) * p.seq + r % p.queries) * p.seq; }
@group(0) @binding(1) var S: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var M: texture_storage_2d<rgba32float, read>;
@group(0) @binding(3) var<storage, read_write> probs: array<vec4<f32>>;
${withDropout ? "@group(0) @binding(4) var<storage, read_write> probsDropped: array<vec4<f32>>;" : ""}
fn exps(sv: vec4<f32>, mv: vec4<f32>, mx: f32) -> vec4<f32> {
  var e = vec4<f32>(0.0);
${perComponent("  if (mv.$c != 0.0) { e.$c = exp(sv.$c - mx); }")}
  return e;
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let r = g.x + g.y * p.stride;
  if (r >= p.n) { return; }
  let s4 = p.seq / 4u;
  let base4 = r * s4;
  let hbase = hash_base(r);
  let mbase4 = (r / p.rowsPerBatch) * s4;
  var mx = -3.4028234663852886e38;
  var real = 0u;
  for (var j = 0u; j < s4; j++) {
    let sv = textureLoad(S, flat_texel(base4 + j));
    let mv = textureLoad(M, flat_texel(mbase4 + j));
${perComponent("    if (mv.$c != 0.0) { mx = max(mx, sv.$c); real++; }")}
  }
  var sum = 0.0;
  for (var j = 0u; j < s4; j++) {
    let e = exps(textureLoad(S, flat_texel(base4 + j)), textureLoad(M, flat_texel(mbase4 + j)), mx);
${perComponent("    sum += e.$c;")}
  }
  // all keys padded: uniform row (HF's additive finfo.min mask gives the same)
  let allPad = real == 0u;
  let inv = select(1.0 / sum, 0.0, allPad);
  let u = 1.0 / f32(p.seq);
  for (var j = 0u; j < s4; j++) {
    let e = exps(textureLoad(S, flat_texel(base4 + j)), textureLoad(M, flat_texel(mbase4 + j)), mx);
    let pr = select(e * inv, vec4<f32>(u), allPad);
    probs[base4 + j] = pr;
    ${
    withDropout
      ? `let i = hbase + j * 4u;
    probsDropped[base4 + j] = vec4<f32>(
      select(0.0, pr.x * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, i)),
      select(0.0, pr.y * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, i + 1u)),
      select(0.0, pr.z * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, i + 2u)),
      select(0.0, pr.w * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, i + 3u)));`
      : ""
  }
  }
}`;

const BACKWARD_TEX_WGSL = (withDropout: boolean) =>
  (withDropout ? RNG_WGSL : "") + FLAT_TEXEL_WGSL + `
struct P { n: u32, stride: u32, seq: u32, queries: u32, k0: u32, k1: u32, k2: u32, k3: u32, p: f32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
// flat index of this row's first score in the whole [batch, heads, seq, seq] tensor: the dropout masks' key
fn hash_base(r: u32) -> u32 { return ((r / p.queries) * p.seq + r % p.queries) * p.seq; }
@group(0) @binding(1) var DP: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var PR: texture_storage_2d<rgba32float, read>;
@group(0) @binding(3) var<storage, read_write> dScores: array<vec4<f32>>;
fn grad_probs(t: u32, i: u32) -> vec4<f32> {
  let v = textureLoad(DP, flat_texel(t));
  ${
    withDropout
      ? `
  return vec4<f32>(
    select(0.0, v.x * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, i)),
    select(0.0, v.y * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, i + 1u)),
    select(0.0, v.z * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, i + 2u)),
    select(0.0, v.w * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, i + 3u)));`
      : "return v;"
  }
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let r = g.x + g.y * p.stride;
  if (r >= p.n) { return; }
  let base4 = r * (p.seq / 4u);
  let hbase = hash_base(r);
  var dot = 0.0;
  for (var j = 0u; j < p.seq / 4u; j++) {
    let gp = grad_probs(base4 + j, hbase + j * 4u);
    let pr = textureLoad(PR, flat_texel(base4 + j));
${perComponent("    dot += gp.$c * pr.$c;")}
  }
  for (var j = 0u; j < p.seq / 4u; j++) {
    dScores[base4 + j] = textureLoad(PR, flat_texel(base4 + j)) * (grad_probs(base4 + j, hbase + j * 4u) - dot);
  }
}`;

/** Whether the texture-staged kernels can take a [batch, heads, seq, seq] problem on this adapter. */
function staged(rec: Recorder, n: number, batch: number, seq: number): boolean {
  return seq % 4 === 0 && canStageFlat(rec.gpu, n) && canStageFlat(rec.gpu, batch * seq);
}

/** The number of scores [batch, heads, queries, seq], after checking the sizes; names the kernel. */
function checkShape(k: string, batch: number, heads: number, seq: number, queries: number): number {
  requireCount(k, "batch", batch);
  requireCount(k, "heads", heads);
  requireCount(k, "seq", seq);
  if (!Number.isInteger(queries) || queries < 1 || queries > seq) {
    throw new Error(`${k}: queries must be an integer in [1, seq = ${seq}], got ${queries}`);
  }
  const whole = batch * heads * seq * seq;
  if (whole > 0xffffffff) throw new Error(`${k}: ${whole} scores exceed the u32 index range`);
  return batch * heads * queries * seq;
}

/**
 * Masked softmax of scores [batch, heads, seq, seq] over the last axis into probs; with dropout > 0 also
 * writes `probsDropped` = inverted dropout of probs keyed by (dropKey, flat score index). With `queries` < seq
 * the scores are [batch, heads, queries, seq], the rows of the first `queries` query positions only (the [CLS]
 * row: 1), and each keeps the dropout mask it has in the whole [batch, heads, seq, seq] tensor.
 *
 * @example
 * ```ts
 * attentionSoftmax(rec, { scores, keyMask, probs, probsDropped, batch: 8, heads: 16, seq: 128,
 *   dropout: 0.1, dropKey: [seed, Purpose.dropout, step, layer * 8 + 1] });
 * ```
 */
export function attentionSoftmax(
  rec: Recorder,
  a: {
    scores: GPUBuffer;
    keyMask: GPUBuffer;
    probs: GPUBuffer;
    probsDropped?: GPUBuffer;
    batch: number;
    heads: number;
    seq: number;
    /** Query positions held (the first ones; default seq). */
    queries?: number;
    dropout?: number;
    dropKey?: DropoutKey;
  },
): void {
  const k = "attentionSoftmax";
  const queries = a.queries ?? a.seq;
  const n = checkShape(k, a.batch, a.heads, a.seq, queries);
  const p = a.dropout ?? 0;
  requireDropout(k, p, a.dropKey);
  requireElements(k, "scores", a.scores, n);
  requireElements(k, "keyMask", a.keyMask, a.batch * a.seq);
  requireElements(k, "probs", a.probs, n);
  requireDistinct(k, ["scores", "probs"], [a.scores, a.probs]);
  requireDistinct(k, ["keyMask", "probs"], [a.keyMask, a.probs]);
  const drop = p > 0;
  if (drop) {
    requireElements(k, "probsDropped", a.probsDropped, n);
    for (const [name, b] of [["scores", a.scores], ["keyMask", a.keyMask], ["probs", a.probs]] as const) {
      requireDistinct(k, [name, "probsDropped"], [b, a.probsDropped]);
    }
  }
  const rows = a.batch * a.heads * queries;
  const key = a.dropKey ?? [0, 0, 0, 0];
  const { groups, stride } = linearGrid(rec, rows, WG);
  const tex = n > 0 && staged(rec, n, a.batch, a.seq);
  const ins = tex
    ? [stageFlat(rec, "softmaxS", a.scores, n), stageFlat(rec, "softmaxM", a.keyMask, a.batch * a.seq)]
    : [a.scores, a.keyMask];
  rec.dispatch({
    pipeline: tex
      ? rec.gpu.pipeline(`attention-softmax-tex-${drop ? "drop" : "plain"}`, () => FORWARD_TEX_WGSL(drop))
      : rec.gpu.pipeline(`attention-softmax-${drop ? "drop" : "plain"}`, () => FORWARD_WGSL(drop)),
    buffers: drop ? [...ins, a.probs, a.probsDropped!] : [...ins, a.probs],
    u32: [rows, stride, a.seq, a.heads * queries, queries, key[0], key[1], key[2], key[3]],
    f32: [p, 1 / (1 - p)],
    groups,
    label: k,
    shape: `${a.batch}x${a.heads}x${queries === a.seq ? "" : `${queries}q`}${a.seq}`,
    flops: (drop ? 6 : 5) * n,
    bytes: 4 * ((drop ? 3 : 2) * n + a.batch * a.seq),
  });
  if (!drop && a.probsDropped && a.probsDropped !== a.probs && n > 0) {
    rec.copy(a.probs, 0, a.probsDropped, 0, n * 4);
  }
}

/**
 * Backward of `attentionSoftmax` (same dropout, dropKey and queries): dP = dropout'(dProbsDropped),
 * `dScores = P ⊙ (dP − Σ_j dP ⊙ P)` per row. Padded keys get exactly 0 (their P is 0).
 */
export function attentionSoftmaxBackward(
  rec: Recorder,
  a: {
    dProbsDropped: GPUBuffer;
    probs: GPUBuffer;
    dScores: GPUBuffer;
    batch: number;
    heads: number;
    seq: number;
    /** Query positions held (the first ones; default seq). */
    queries?: number;
    dropout?: number;
    dropKey?: DropoutKey;
  },
): void {
  const k = "attentionSoftmaxBackward";
  const queries = a.queries ?? a.seq;
  const n = checkShape(k, a.batch, a.heads, a.seq, queries);
  const p = a.dropout ?? 0;
  requireDropout(k, p, a.dropKey);
  requireElements(k, "dProbsDropped", a.dProbsDropped, n);
  requireElements(k, "probs", a.probs, n);
  requireElements(k, "dScores", a.dScores, n);
  requireDistinct(k, ["dProbsDropped", "dScores"], [a.dProbsDropped, a.dScores]);
  requireDistinct(k, ["probs", "dScores"], [a.probs, a.dScores]);
  const drop = p > 0;
  const rows = a.batch * a.heads * queries;
  const key = a.dropKey ?? [0, 0, 0, 0];
  const { groups, stride } = linearGrid(rec, rows, WG);
  const tex = n > 0 && staged(rec, n, a.batch, a.seq);
  rec.dispatch({
    pipeline: tex
      ? rec.gpu.pipeline(
        `attention-softmax-backward-tex-${drop ? "drop" : "plain"}`,
        () => BACKWARD_TEX_WGSL(drop),
      )
      : rec.gpu.pipeline(`attention-softmax-backward-${drop ? "drop" : "plain"}`, () => BACKWARD_WGSL(drop)),
    buffers: tex
      ? [stageFlat(rec, "softmaxDP", a.dProbsDropped, n), stageFlat(rec, "softmaxP", a.probs, n), a.dScores]
      : [a.dProbsDropped, a.probs, a.dScores],
    u32: [rows, stride, a.seq, queries, key[0], key[1], key[2], key[3]],
    f32: [p, 1 / (1 - p)],
    groups,
    label: k,
    shape: `${a.batch}x${a.heads}x${queries === a.seq ? "" : `${queries}q`}${a.seq}`,
    flops: 5 * n,
    bytes: 12 * n,
  });
}
