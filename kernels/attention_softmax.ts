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

const WG = 64;

const FORWARD_WGSL = (withDropout: boolean) =>
  (withDropout ? RNG_WGSL : "") + `
struct P { n: u32, stride: u32, seq: u32, rowsPerBatch: u32, k0: u32, k1: u32, k2: u32, k3: u32, p: f32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> keyMask: array<f32>;
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;
${withDropout ? "@group(0) @binding(4) var<storage, read_write> probsDropped: array<f32>;" : ""}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let r = g.x + g.y * p.stride;
  if (r >= p.n) { return; }
  let base = r * p.seq;
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
      ? "probsDropped[base + j] = select(0.0, pr * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, base + j));"
      : ""
  }
  }
}`;

const BACKWARD_WGSL = (withDropout: boolean) =>
  (withDropout ? RNG_WGSL : "") + `
struct P { n: u32, stride: u32, seq: u32, k0: u32, k1: u32, k2: u32, k3: u32, p: f32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> dProbsDropped: array<f32>;
@group(0) @binding(2) var<storage, read> probs: array<f32>;
@group(0) @binding(3) var<storage, read_write> dScores: array<f32>;
fn grad_probs(i: u32) -> f32 {
  ${
    withDropout
      ? "return select(0.0, dProbsDropped[i] * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, i));"
      : "return dProbsDropped[i];"
  }
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let r = g.x + g.y * p.stride;
  if (r >= p.n) { return; }
  let base = r * p.seq;
  var dot = 0.0;
  for (var j = 0u; j < p.seq; j++) { dot += grad_probs(base + j) * probs[base + j]; }
  for (var j = 0u; j < p.seq; j++) { dScores[base + j] = probs[base + j] * (grad_probs(base + j) - dot); }
}`;

function checkShape(k: string, batch: number, heads: number, seq: number): number {
  requireCount(k, "batch", batch);
  requireCount(k, "heads", heads);
  requireCount(k, "seq", seq);
  const n = batch * heads * seq * seq;
  if (n > 0xffffffff) throw new Error(`${k}: ${n} scores exceed the u32 index range`);
  return n;
}

/**
 * Masked softmax of scores [batch, heads, seq, seq] over the last axis into probs; with dropout > 0 also
 * writes `probsDropped` = inverted dropout of probs keyed by (dropKey, flat score index).
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
    dropout?: number;
    dropKey?: DropoutKey;
  },
): void {
  const k = "attentionSoftmax";
  const n = checkShape(k, a.batch, a.heads, a.seq);
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
  const rows = a.batch * a.heads * a.seq;
  const key = a.dropKey ?? [0, 0, 0, 0];
  const { groups, stride } = linearGrid(rec, rows, WG);
  rec.dispatch({
    pipeline: rec.gpu.pipeline(`attention-softmax-${drop ? "drop" : "plain"}`, FORWARD_WGSL(drop)),
    buffers: drop ? [a.scores, a.keyMask, a.probs, a.probsDropped!] : [a.scores, a.keyMask, a.probs],
    u32: [rows, stride, a.seq, a.heads * a.seq, key[0], key[1], key[2], key[3]],
    f32: [p, 1 / (1 - p)],
    groups,
    label: k,
    shape: `${a.batch}x${a.heads}x${a.seq}`,
    flops: (drop ? 6 : 5) * n,
    bytes: 4 * ((drop ? 3 : 2) * n + a.batch * a.seq),
  });
  if (!drop && a.probsDropped && a.probsDropped !== a.probs && n > 0) {
    rec.copy(a.probs, 0, a.probsDropped, 0, n * 4);
  }
}

/**
 * Backward of `attentionSoftmax` (same dropout and dropKey): dP = dropout'(dProbsDropped),
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
    dropout?: number;
    dropKey?: DropoutKey;
  },
): void {
  const k = "attentionSoftmaxBackward";
  const n = checkShape(k, a.batch, a.heads, a.seq);
  const p = a.dropout ?? 0;
  requireDropout(k, p, a.dropKey);
  requireElements(k, "dProbsDropped", a.dProbsDropped, n);
  requireElements(k, "probs", a.probs, n);
  requireElements(k, "dScores", a.dScores, n);
  requireDistinct(k, ["dProbsDropped", "dScores"], [a.dProbsDropped, a.dScores]);
  requireDistinct(k, ["probs", "dScores"], [a.probs, a.dScores]);
  const drop = p > 0;
  const rows = a.batch * a.heads * a.seq;
  const key = a.dropKey ?? [0, 0, 0, 0];
  const { groups, stride } = linearGrid(rec, rows, WG);
  rec.dispatch({
    pipeline: rec.gpu.pipeline(`attention-softmax-backward-${drop ? "drop" : "plain"}`, BACKWARD_WGSL(drop)),
    buffers: [a.dProbsDropped, a.probs, a.dScores],
    u32: [rows, stride, a.seq, key[0], key[1], key[2], key[3]],
    f32: [p, 1 / (1 - p)],
    groups,
    label: k,
    shape: `${a.batch}x${a.heads}x${a.seq}`,
    flops: 5 * n,
    bytes: 12 * n,
  });
}
