/**
 * Losses of the classification head: softmax cross-entropy (GLUE classification tasks) and squared error
 * (STS-B regression). Each writes per-example losses (the caller averages them on the host after its one
 * readback) and the gradient of the batch mean.
 *
 * Profiler convention: cross-entropy flops 6 per logit, bytes 4·(2·batch·classes + 2·batch); squared error
 * flops 4 per example, bytes 4·4·batch.
 * @module
 */
import type { Recorder } from "./recorder.ts";
import { linearGrid, requireCount, requireDistinct, requireElements } from "./elementwise.ts";

const WG = 64;

const CROSS_ENTROPY_WGSL = `
struct P { n: u32, stride: u32, classes: u32, invBatch: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> losses: array<f32>;
@group(0) @binding(4) var<storage, read_write> dLogits: array<f32>;
// log(1 + u) for u >= 0 with relative accuracy near 0 (WGSL's log only promises 2^-21 absolute error on
// [0.5, 2]): for u < 1, 2·atanh(t) = 2(t + t³/3 + t⁵/5 + …) with t = u/(2 + u) <= 1/3 (11 terms).
fn log1p_f32(u: f32) -> f32 {
  if (u >= 1.0) { return log(1.0 + u); }
  let t = u / (2.0 + u);
  let t2 = t * t;
  var s = 1.0 / 21.0;
  for (var k = 9; k >= 0; k--) { s = s * t2 + 1.0 / f32(2 * k + 1); }
  return 2.0 * t * s;
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let b = g.x + g.y * p.stride;
  if (b >= p.n) { return; }
  let base = b * p.classes;
  let label = labels[b];
  if (label < 0 || u32(label) >= p.classes) {
    // invalid label: NaN loss and gradients, so the host sees it in the loss it reads back
    let nan = bitcast<f32>(0x7fc00000u);
    losses[b] = nan;
    for (var c = 0u; c < p.classes; c++) { dLogits[base + c] = nan; }
    return;
  }
  // argmax first: its exp is exactly 1, so sum = 1 + rest and log(sum) = log1p(rest) keeps small losses accurate
  var am = 0u;
  var mx = logits[base];
  for (var c = 1u; c < p.classes; c++) { if (logits[base + c] > mx) { mx = logits[base + c]; am = c; } }
  var rest = 0.0;
  for (var c = 0u; c < p.classes; c++) { if (c != am) { rest += exp(logits[base + c] - mx); } }
  let inv = 1.0 / (1.0 + rest);
  let lab = u32(label);
  losses[b] = log1p_f32(rest) + (mx - logits[base + lab]);
  for (var c = 0u; c < p.classes; c++) {
    var d = exp(logits[base + c] - mx) * inv;
    if (c == lab) { d = select(d - 1.0, -rest * inv, c == am); }
    dLogits[base + c] = d * p.invBatch;
  }
}`;

/**
 * Softmax cross-entropy per example: `losses[b] = −log softmax(logits[b])[labels[b]]`, and the gradient of
 * the mean loss `dLogits = (softmax − onehot)/batch`. logits, dLogits: [batch, classes]; labels: i32 [batch].
 * Labels must be in [0, classes); an invalid label gives NaN for that example's loss and gradients.
 *
 * @example
 * ```ts
 * crossEntropy(rec, { logits, labels, losses, dLogits, batch: 16, classes: 2 });
 * const loss = (await rec.read(losses, 16)).reduce((a, b) => a + b) / 16;
 * ```
 */
export function crossEntropy(
  rec: Recorder,
  a: {
    logits: GPUBuffer;
    labels: GPUBuffer;
    losses: GPUBuffer;
    dLogits: GPUBuffer;
    batch: number;
    classes: number;
  },
): void {
  const k = "crossEntropy";
  requireCount(k, "batch", a.batch);
  requireCount(k, "classes", a.classes);
  if (a.classes < 1) throw new Error(`${k}: classes must be at least 1`);
  const n = a.batch * a.classes;
  requireElements(k, "logits", a.logits, n);
  requireElements(k, "labels", a.labels, a.batch);
  requireElements(k, "losses", a.losses, a.batch);
  requireElements(k, "dLogits", a.dLogits, n);
  requireDistinct(k, ["logits", "labels", "losses", "dLogits"], [a.logits, a.labels, a.losses, a.dLogits]);
  const { groups, stride } = linearGrid(rec, a.batch, WG);
  rec.dispatch({
    pipeline: rec.gpu.pipeline("cross-entropy", CROSS_ENTROPY_WGSL),
    buffers: [a.logits, a.labels, a.losses, a.dLogits],
    u32: [a.batch, stride, a.classes],
    f32: [a.batch > 0 ? 1 / a.batch : 0],
    groups,
    label: k,
    shape: `${a.batch}x${a.classes}`,
    flops: 6 * n,
    bytes: 4 * (2 * n + 2 * a.batch),
  });
}

const MSE_WGSL = `
struct P { n: u32, stride: u32, twoOverBatch: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> preds: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> losses: array<f32>;
@group(0) @binding(4) var<storage, read_write> dPreds: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let b = g.x + g.y * p.stride;
  if (b >= p.n) { return; }
  let d = preds[b] - targets[b];
  losses[b] = d * d;
  dPreds[b] = d * p.twoOverBatch;
}`;

/**
 * Squared error per example `losses[b] = (preds[b] − targets[b])²` and the gradient of the mean
 * `dPreds = 2(pred − target)/batch`. All buffers are f32 [batch].
 */
export function meanSquaredError(
  rec: Recorder,
  a: { preds: GPUBuffer; targets: GPUBuffer; losses: GPUBuffer; dPreds: GPUBuffer; batch: number },
): void {
  const k = "meanSquaredError";
  requireCount(k, "batch", a.batch);
  requireElements(k, "preds", a.preds, a.batch);
  requireElements(k, "targets", a.targets, a.batch);
  requireElements(k, "losses", a.losses, a.batch);
  requireElements(k, "dPreds", a.dPreds, a.batch);
  requireDistinct(k, ["preds", "targets", "losses", "dPreds"], [a.preds, a.targets, a.losses, a.dPreds]);
  const { groups, stride } = linearGrid(rec, a.batch, WG);
  rec.dispatch({
    pipeline: rec.gpu.pipeline("mean-squared-error", MSE_WGSL),
    buffers: [a.preds, a.targets, a.losses, a.dPreds],
    u32: [a.batch, stride],
    f32: [a.batch > 0 ? 2 / a.batch : 0],
    groups,
    label: k,
    shape: `${a.batch}`,
    flops: 4 * a.batch,
    bytes: 16 * a.batch,
  });
}
