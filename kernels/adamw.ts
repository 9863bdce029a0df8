/**
 * AdamW with torch.optim.AdamW semantics, one elementwise kernel per parameter tensor: decoupled weight
 * decay `p −= lr·wd·p`, then `m = β1 m + (1−β1) g`, `v = β2 v + (1−β2) g²`,
 * `p −= lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps)`. An optional f32 0/1 mask freezes entries: where the
 * mask is 0 the kernel does not write param, m or v at all (bit-identical after the call) — FedLoDrop's
 * dropped rows/columns keep their values and optimizer state.
 *
 * Profiler convention: flops 12 per element, bytes 4·7 per element (read p, g, m, v; write p, m, v) plus 4 for
 * the mask when given.
 * @module
 */
import type { Recorder } from "./recorder.ts";
import { linearGrid, requireCount, requireDistinct, requireElements, requireFinite } from "./elementwise.ts";

const WG = 64;

const ADAMW_WGSL = (masked: boolean) => `
struct P { n: u32, stride: u32, decay: f32, beta1: f32, beta2: f32, stepSize: f32, invSqrtBc2: f32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
${masked ? "@group(0) @binding(5) var<storage, read> mask: array<f32>;" : ""}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.n) { return; }
  ${masked ? "if (mask[i] == 0.0) { return; }" : ""}
  let g = grad[i];
  let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
  let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  param[i] = param[i] * p.decay - p.stepSize * mi / (sqrt(vi) * p.invSqrtBc2 + p.eps);
}`;

/**
 * One AdamW step over `n` elements of param (updated in place) with gradient grad and state m, v
 * (zero-initialised before step 1). `step` is 1-based. Entries whose `mask` is 0 are left untouched.
 *
 * @example
 * ```ts
 * adamw(rec, { param: loraA, grad: dA, m: mA, v: vA, mask: maskA, n: r * nIn,
 *   lr: 5e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: t });
 * ```
 */
export function adamw(
  rec: Recorder,
  a: {
    param: GPUBuffer;
    grad: GPUBuffer;
    m: GPUBuffer;
    v: GPUBuffer;
    mask?: GPUBuffer;
    n: number;
    lr: number;
    beta1: number;
    beta2: number;
    eps: number;
    weightDecay: number;
    step: number;
  },
): void {
  const k = "adamw";
  requireCount(k, "n", a.n);
  for (const name of ["lr", "beta1", "beta2", "eps", "weightDecay"] as const) requireFinite(k, name, a[name]);
  if (!(a.beta1 >= 0 && a.beta1 < 1)) throw new Error(`adamw: beta1 must be in [0, 1), got ${a.beta1}`);
  if (!(a.beta2 >= 0 && a.beta2 < 1)) throw new Error(`adamw: beta2 must be in [0, 1), got ${a.beta2}`);
  if (!(a.lr >= 0) || !(a.eps >= 0) || !(a.weightDecay >= 0)) {
    throw new Error(`adamw: lr, eps and weightDecay must be >= 0 (got ${a.lr}, ${a.eps}, ${a.weightDecay})`);
  }
  if (!Number.isInteger(a.step) || a.step < 1) {
    throw new Error(`adamw: step must be an integer >= 1, got ${a.step}`);
  }
  requireElements(k, "param", a.param, a.n);
  requireElements(k, "grad", a.grad, a.n);
  requireElements(k, "m", a.m, a.n);
  requireElements(k, "v", a.v, a.n);
  if (a.mask) requireElements(k, "mask", a.mask, a.n);
  requireDistinct(k, ["param", "grad", "m", "v", "mask"], [a.param, a.grad, a.m, a.v, a.mask]);
  const bc1 = 1 - a.beta1 ** a.step, bc2 = 1 - a.beta2 ** a.step;
  const masked = a.mask !== undefined;
  const { groups, stride } = linearGrid(rec, a.n, WG);
  rec.dispatch({
    pipeline: rec.gpu.pipeline(`adamw-${masked ? "masked" : "dense"}`, () => ADAMW_WGSL(masked)),
    buffers: masked ? [a.param, a.grad, a.m, a.v, a.mask!] : [a.param, a.grad, a.m, a.v],
    u32: [a.n, stride],
    f32: [1 - a.lr * a.weightDecay, a.beta1, a.beta2, a.lr / bc1, 1 / Math.sqrt(bc2), a.eps],
    groups,
    label: k,
    shape: `${a.n}`,
    flops: 12 * a.n,
    bytes: 4 * a.n * (masked ? 8 : 7),
  });
}
