/**
 * Elementwise and small reduction kernels: add, axpy-style accumulate, scale, fill, column sums (bias
 * gradients) and row/column masking (FedLoDrop's A ⊙ mA and mB ⊙ B).
 *
 * Profiler convention for every launcher here: `flops` counts one per arithmetic operation per element
 * (an add, a multiply, a fused multiply-add counts 2), `bytes` is 4 × (elements read + elements written).
 * @module
 */
import type { Recorder } from "./recorder.ts";
import { elementwiseMap } from "./elementwise_map.ts";

/** Invocations per workgroup of the 1-D elementwise kernels. */
export const ELEMENTWISE_WORKGROUP = 64;

/**
 * Splits `n` invocations into a 2-D grid that respects `maxComputeWorkgroupsPerDimension`.
 * The kernel's linear index is `gid.x + gid.y * stride` (stride = groups[0] × workgroup size).
 *
 * @example
 * ```ts
 * const { groups, stride } = linearGrid(rec, n, 64);
 * rec.dispatch({ pipeline, buffers, u32: [n, stride], groups, label: "my-kernel" });
 * ```
 */
export function linearGrid(
  rec: Recorder,
  n: number,
  workgroup: number,
): { groups: [number, number]; stride: number } {
  const max = rec.gpu.limits.maxComputeWorkgroupsPerDimension;
  const total = Math.ceil(n / workgroup);
  const x = Math.max(1, Math.min(total, max));
  const y = Math.ceil(total / x);
  if (y > max) {
    throw new Error(`linearGrid: ${n} invocations exceed ${max}×${max} workgroups of ${workgroup}`);
  }
  return { groups: [n === 0 ? 0 : x, Math.max(1, y)], stride: x * workgroup };
}

/**
 * Throws a clear error unless `count` is a non-negative integer (elements) and `buf` holds at least
 * `count` 4-byte elements. Used by every launcher in this folder.
 */
export function requireElements(
  kernel: string,
  name: string,
  buf: GPUBuffer | undefined,
  count: number,
): void {
  if (!Number.isInteger(count) || count < 0) {
    throw new Error(`${kernel}: the element count for ${name} must be a non-negative integer, got ${count}`);
  }
  if (!buf) throw new Error(`${kernel}: buffer ${name} is missing`);
  if (buf.size < count * 4) {
    throw new Error(
      `${kernel}: buffer ${name} has ${buf.size} bytes but ${count} elements (${count * 4} bytes) are needed`,
    );
  }
}

/** Throws unless `value` is a non-negative integer; names the kernel and the argument. */
export function requireCount(kernel: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`${kernel}: ${name} must be a non-negative integer, got ${value}`);
  }
}

/** Throws unless `value` is a finite number; names the kernel and the argument. */
export function requireFinite(kernel: string, name: string, value: number): void {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new Error(`${kernel}: ${name} must be a finite number, got ${value}`);
  }
}

/** Throws when two buffers are the same object (WebGPU forbids writable aliasing in one dispatch). */
export function requireDistinct(kernel: string, names: string[], bufs: (GPUBuffer | undefined)[]): void {
  for (let i = 0; i < bufs.length; i++) {
    for (let j = i + 1; j < bufs.length; j++) {
      if (bufs[i] && bufs[i] === bufs[j]) {
        throw new Error(`${kernel}: ${names[i]} and ${names[j]} must be different buffers`);
      }
    }
  }
}

const WG = ELEMENTWISE_WORKGROUP;
const HEAD = (fields: string) => `
struct P { ${fields} }
@group(0) @binding(0) var<uniform> p: P;
`;
const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride;
  if (i >= p.n) { return; }`;

/**
 * `out = a + b` over `n` elements (`out` may not alias `a` or `b`). flops n, bytes 12n.
 *
 * @example
 * ```ts
 * add(rec, { a: x, b: residual, out: sum, n: rows * cols });
 * ```
 */
export function add(rec: Recorder, a: { a: GPUBuffer; b: GPUBuffer; out: GPUBuffer; n: number }): void {
  const k = "add";
  requireElements(k, "a", a.a, a.n);
  requireElements(k, "b", a.b, a.n);
  requireElements(k, "out", a.out, a.n);
  requireDistinct(k, ["a", "out"], [a.a, a.out]);
  requireDistinct(k, ["b", "out"], [a.b, a.out]);
  elementwiseMap(rec, {
    label: "add",
    op: "return v0 + v1;",
    inputs: [a.a, a.b],
    out: a.out,
    n: a.n,
    flopsPerElement: 1,
    bytesPerElement: 12,
  });
}

/** `y += alpha·x` over `n` elements (alpha defaults to 1; x and y must differ). flops 2n, bytes 12n. */
export function addInPlace(
  rec: Recorder,
  a: { x: GPUBuffer; y: GPUBuffer; n: number; alpha?: number },
): void {
  const k = "addInPlace";
  const alpha = a.alpha ?? 1;
  requireElements(k, "x", a.x, a.n);
  requireElements(k, "y", a.y, a.n);
  requireFinite(k, "alpha", alpha);
  requireDistinct(k, ["x", "y"], [a.x, a.y]);
  elementwiseMap(rec, {
    label: "addInPlace",
    op: "return v1 + p.alpha * v0;",
    f32: [["alpha", alpha]],
    inputs: [a.x, a.y],
    out: a.y,
    n: a.n,
    flopsPerElement: 2,
    bytesPerElement: 12,
  });
}

const SCALE_WGSL = HEAD("n: u32, stride: u32, alpha: f32") + `
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
${ENTRY}
  x[i] = x[i] * p.alpha;
}`;

/** `x *= alpha` in place over `n` elements. flops n, bytes 8n. */
export function scale(rec: Recorder, a: { x: GPUBuffer; n: number; alpha: number }): void {
  const k = "scale";
  requireElements(k, "x", a.x, a.n);
  requireFinite(k, "alpha", a.alpha);
  const { groups, stride } = linearGrid(rec, a.n, WG);
  rec.dispatch({
    pipeline: rec.gpu.pipeline("scale", SCALE_WGSL),
    buffers: [a.x],
    u32: [a.n, stride],
    f32: [a.alpha],
    groups,
    label: "scale",
    shape: `${a.n}`,
    flops: a.n,
    bytes: 8 * a.n,
  });
}

const FILL_WGSL = HEAD("n: u32, stride: u32, offset: u32, value: f32") + `
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
${ENTRY}
  x[p.offset + i] = p.value;
}`;

/** `x[offset + i] = value` for i < n (offset in elements, default 0). flops 0, bytes 4n. */
export function fill(rec: Recorder, a: { x: GPUBuffer; n: number; value: number; offset?: number }): void {
  const k = "fill";
  const offset = a.offset ?? 0;
  requireCount(k, "offset", offset);
  requireCount(k, "n", a.n);
  requireElements(k, "x", a.x, offset + a.n);
  if (typeof a.value !== "number") throw new Error(`fill: value must be a number, got ${a.value}`);
  const { groups, stride } = linearGrid(rec, a.n, WG);
  rec.dispatch({
    pipeline: rec.gpu.pipeline("fill", FILL_WGSL),
    buffers: [a.x],
    u32: [a.n, stride, offset],
    f32: [a.value],
    groups,
    label: "fill",
    shape: `${a.n}`,
    flops: 0,
    bytes: 4 * a.n,
  });
}

const SUM_ROWS_WGSL = HEAD("n: u32, stride: u32, rows: u32, ldx: u32, accumulate: u32") + `
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
${ENTRY}
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += x[r * p.ldx + i]; }
  if (p.accumulate != 0u) { s += o[i]; }
  o[i] = s;
}`;

/**
 * Column sums: `out[j] (=|+=) Σ_i x[i*ldx + j]` for j < cols (bias gradients). `ldx` defaults to `cols`.
 * One invocation per column. flops rows·cols, bytes 4·(rows·cols + cols).
 *
 * @example
 * ```ts
 * sumRows(rec, { x: dY, out: dBias, rows: tokens, cols: hidden, accumulate: true });
 * ```
 */
export function sumRows(
  rec: Recorder,
  a: { x: GPUBuffer; out: GPUBuffer; rows: number; cols: number; accumulate?: boolean; ldx?: number },
): void {
  const k = "sumRows";
  const ldx = a.ldx ?? a.cols;
  requireCount(k, "rows", a.rows);
  requireCount(k, "cols", a.cols);
  requireCount(k, "ldx", ldx);
  if (ldx < a.cols) throw new Error(`sumRows: ldx ${ldx} is smaller than cols ${a.cols}`);
  requireElements(k, "x", a.x, a.rows === 0 ? 0 : (a.rows - 1) * ldx + a.cols);
  requireElements(k, "out", a.out, a.cols);
  requireDistinct(k, ["x", "out"], [a.x, a.out]);
  const { groups, stride } = linearGrid(rec, a.cols, WG);
  rec.dispatch({
    pipeline: rec.gpu.pipeline("sum-rows", SUM_ROWS_WGSL),
    buffers: [a.x, a.out],
    u32: [a.cols, stride, a.rows, ldx, a.accumulate ? 1 : 0],
    groups,
    label: "sumRows",
    shape: `${a.rows}x${a.cols}`,
    flops: a.rows * a.cols,
    bytes: 4 * (a.rows * a.cols + a.cols),
  });
}

const MASK_WGSL = (byRow: boolean) =>
  HEAD("n: u32, stride: u32, cols: u32") + `
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
${ENTRY}
  o[i] = x[i] * mask[${byRow ? "i / p.cols" : "i % p.cols"}];
}`;

function maskLauncher(
  byRow: boolean,
  rec: Recorder,
  a: { x: GPUBuffer; mask: GPUBuffer; out: GPUBuffer; rows: number; cols: number },
): void {
  const k = byRow ? "maskRows" : "maskColumns";
  requireCount(k, "rows", a.rows);
  requireCount(k, "cols", a.cols);
  const n = a.rows * a.cols;
  requireElements(k, "x", a.x, n);
  requireElements(k, "mask", a.mask, byRow ? a.rows : a.cols);
  requireElements(k, "out", a.out, n);
  requireDistinct(k, ["x", "out"], [a.x, a.out]);
  requireDistinct(k, ["mask", "out"], [a.mask, a.out]);
  const { groups, stride } = linearGrid(rec, n, WG);
  rec.dispatch({
    pipeline: rec.gpu.pipeline(byRow ? "mask-rows" : "mask-columns", () => MASK_WGSL(byRow)),
    buffers: [a.x, a.mask, a.out],
    u32: [n, stride, a.cols],
    groups,
    label: k,
    shape: `${a.rows}x${a.cols}`,
    flops: n,
    bytes: 4 * (2 * n + (byRow ? a.rows : a.cols)),
  });
}

/**
 * `out[i, j] = x[i, j] · mask[j]` for x [rows, cols] (A ⊙ mA). A 0/1 mask gives exact zeros for finite x.
 * flops rows·cols, bytes 4·(2·rows·cols + cols).
 */
export function maskColumns(
  rec: Recorder,
  a: { x: GPUBuffer; mask: GPUBuffer; out: GPUBuffer; rows: number; cols: number },
): void {
  maskLauncher(false, rec, a);
}

/**
 * `out[i, j] = x[i, j] · mask[i]` for x [rows, cols] (mB ⊙ B). A 0/1 mask gives exact zeros for finite x.
 * flops rows·cols, bytes 4·(2·rows·cols + rows).
 */
export function maskRows(
  rec: Recorder,
  a: { x: GPUBuffer; mask: GPUBuffer; out: GPUBuffer; rows: number; cols: number },
): void {
  maskLauncher(true, rec, a);
}
