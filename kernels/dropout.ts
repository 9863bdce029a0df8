/**
 * Inverted dropout as a pure function of (key, flat index): `y = keep ? x / (1 − p) : 0`, with the keep
 * decision `keep_key5(p, k0, k1, k2, k3, i)` from the project's RNG, so the backward pass (and the float64
 * reference) recompute the very same mask without storing it.
 *
 * Profiler convention: flops = 1 per element (the scale; the hash is not counted), bytes = 4 × (read + written).
 * @module
 */
import type { Recorder } from "./recorder.ts";
import { RNG_WGSL } from "./rng.ts";
import { ELEMENTWISE_WORKGROUP, linearGrid, requireDistinct, requireElements } from "./elementwise.ts";

/** A dropout key: four u32 words (e.g. seed, Purpose.dropout, step, tensor id) fed to `keep_key5`. */
export type DropoutKey = readonly [number, number, number, number];

/** Throws unless `p` is a rate in [0, 1) and, when p > 0, `key` is four u32 words; names the kernel. */
export function requireDropout(kernel: string, p: number, key: DropoutKey | undefined): void {
  if (typeof p !== "number" || !(p >= 0 && p < 1)) {
    throw new Error(`${kernel}: dropout rate must be in [0, 1), got ${p}`);
  }
  if (p > 0) {
    if (!key || key.length !== 4 || !key.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
      throw new Error(`${kernel}: dropout key must be four u32 words, got ${JSON.stringify(key)}`);
    }
  }
}

const WG = ELEMENTWISE_WORKGROUP;
const DROPOUT_WGSL = (accumulate: boolean) =>
  RNG_WGSL + `
struct P { n: u32, stride: u32, k0: u32, k1: u32, k2: u32, k3: u32, p: f32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride;
  if (i >= p.n) { return; }
  let keep = keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, i);
  let v = select(0.0, x[i] * p.scale, keep);
  ${accumulate ? "y[i] = y[i] + v;" : "y[i] = v;"}
}`;

const DROPOUT_IN_PLACE_WGSL = RNG_WGSL + `
struct P { n: u32, stride: u32, k0: u32, k1: u32, k2: u32, k3: u32, p: f32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride;
  if (i >= p.n) { return; }
  x[i] = select(0.0, x[i] * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, i));
}`;

function record(
  rec: Recorder,
  kernel: string,
  x: GPUBuffer,
  y: GPUBuffer,
  n: number,
  p: number,
  key: DropoutKey,
  accumulate: boolean,
): void {
  const { groups, stride } = linearGrid(rec, n, WG);
  const inPlace = x === y;
  if (inPlace && accumulate) {
    throw new Error(`${kernel}: accumulate needs different input and output buffers`);
  }
  rec.dispatch({
    pipeline: inPlace
      ? rec.gpu.pipeline("dropout-in-place", DROPOUT_IN_PLACE_WGSL)
      : rec.gpu.pipeline(`dropout-${accumulate ? "acc" : "set"}`, DROPOUT_WGSL(accumulate)),
    buffers: inPlace ? [x] : [x, y],
    u32: [n, stride, key[0], key[1], key[2], key[3]],
    f32: [p, 1 / (1 - p)],
    groups,
    label: kernel,
    shape: `${n}`,
    flops: n,
    bytes: 4 * n * (accumulate ? 3 : 2),
  });
}

/**
 * Inverted dropout `y[i] = keep(i) ? x[i]/(1−p) : 0` for i < n. p = 0 is the identity (a buffer copy, or
 * nothing when x and y are the same buffer). x and y may be the same buffer (in-place dropout).
 *
 * @example
 * ```ts
 * dropout(rec, { x: h, y: hDropped, n: tokens * hidden, p: 0.1, key: [seed, Purpose.dropout, step, 7] });
 * ```
 */
export function dropout(
  rec: Recorder,
  a: { x: GPUBuffer; y: GPUBuffer; n: number; p: number; key: DropoutKey },
): void {
  const k = "dropout";
  requireElements(k, "x", a.x, a.n);
  requireElements(k, "y", a.y, a.n);
  requireDropout(k, a.p, a.key);
  if (a.p === 0) {
    if (a.x !== a.y && a.n > 0) rec.copy(a.x, 0, a.y, 0, a.n * 4);
    return;
  }
  record(rec, k, a.x, a.y, a.n, a.p, a.key, false);
}

/**
 * Backward of `dropout` with the same p and key: `dx[i] (=|+=) keep(i) ? dy[i]/(1−p) : 0`.
 * With `accumulate` the result is added to dx (default: overwritten); without it dy and dx may be the same
 * buffer (in place).
 */
export function dropoutBackward(
  rec: Recorder,
  a: { dy: GPUBuffer; dx: GPUBuffer; n: number; p: number; key: DropoutKey; accumulate?: boolean },
): void {
  const k = "dropoutBackward";
  requireElements(k, "dy", a.dy, a.n);
  requireElements(k, "dx", a.dx, a.n);
  requireDropout(k, a.p, a.key);
  const acc = a.accumulate ?? false;
  if (a.p === 0 && !acc) {
    if (a.dy !== a.dx && a.n > 0) rec.copy(a.dy, 0, a.dx, 0, a.n * 4);
    return;
  }
  if (acc) requireDistinct(k, ["dy", "dx"], [a.dy, a.dx]);
  record(rec, k, a.dy, a.dx, a.n, a.p, a.key ?? [0, 0, 0, 0], acc);
}
