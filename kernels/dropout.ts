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
import { requireDistinct, requireElements } from "./elementwise.ts";
import { elementwiseMap } from "./elementwise_map.ts";

/** A dropout key: four u32 words (e.g. seed, Purpose.dropout, step, tensor id) fed to `keep_key5`. */
export type DropoutKey = readonly [number, number, number, number];

/**
 * Some rows of a larger tensor: the buffer holds rows 0, `every`, 2·`every`, … of a tensor [·, `cols`] (the
 * [CLS] rows of hidden states [batch·seq, hidden] with every = seq), and each element takes the dropout
 * decision of its place in that tensor, flat index ⌊i / cols⌋·every·cols + i mod cols. Computing only those rows
 * then drops exactly what the whole tensor's pass drops there.
 */
export interface RowsOf {
  /** Row length of both tensors. */
  cols: number;
  /** Row step of the larger tensor between consecutive rows held here (1: the buffer is the whole tensor). */
  every: number;
}

/** The flat index in the larger tensor of element `i` of a buffer holding `rows` of it ({@link RowsOf}). */
export function rowsOfIndex(i: number, rows: RowsOf | undefined): number {
  if (!rows || rows.every === 1) return i;
  return Math.floor(i / rows.cols) * rows.every * rows.cols + i % rows.cols;
}

/** Throws unless `rows` is undefined or two positive integers whose largest mapped index stays below 2^32. */
export function requireRowsOf(kernel: string, rows: RowsOf | undefined, n: number): void {
  if (!rows) return;
  const { cols, every } = rows;
  if (!Number.isInteger(cols) || cols < 1 || !Number.isInteger(every) || every < 1) {
    throw new Error(`${kernel}: rowsOf needs positive integers cols and every, got ${JSON.stringify(rows)}`);
  }
  if (n > 0 && rowsOfIndex(n - 1, rows) > 0xffffffff) {
    throw new Error(`${kernel}: rowsOf ${JSON.stringify(rows)} maps ${n} elements past the u32 index range`);
  }
}

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

function record(
  rec: Recorder,
  kernel: string,
  x: GPUBuffer,
  y: GPUBuffer,
  n: number,
  p: number,
  key: DropoutKey,
  accumulate: boolean,
  rows: RowsOf | undefined,
): void {
  const inPlace = x === y;
  if (inPlace && accumulate) {
    throw new Error(`${kernel}: accumulate needs different input and output buffers`);
  }
  // keep decision keyed by the flat element index i (or its place in the larger tensor of `rows`), exactly as
  // the float64 reference does
  const mapped = rows && rows.every > 1;
  const index = mapped ? "(i / p.cols) * p.every * p.cols + i % p.cols" : "i";
  const v = `select(0.0, v0 * p.scale, keep_key5(p.p, p.k0, p.k1, p.k2, p.k3, ${index}))`;
  const u32: [string, number][] = [["k0", key[0]], ["k1", key[1]], ["k2", key[2]], ["k3", key[3]]];
  if (mapped) u32.push(["cols", rows.cols], ["every", rows.every]);
  elementwiseMap(rec, {
    label: kernel,
    prelude: RNG_WGSL,
    op: accumulate ? `return v1 + ${v};` : `return ${v};`,
    u32,
    f32: [["p", p], ["scale", 1 / (1 - p)]],
    inputs: accumulate ? [x, y] : [x],
    out: y,
    n,
    flopsPerElement: 1,
    bytesPerElement: 4 * (accumulate ? 3 : 2),
  });
}

/**
 * Inverted dropout `y[i] = keep(i) ? x[i]/(1−p) : 0` for i < n. p = 0 is the identity (a buffer copy, or
 * nothing when x and y are the same buffer). x and y may be the same buffer (in-place dropout). With `rowsOf`
 * the buffer holds some rows of a larger tensor and takes that tensor's mask there ({@link RowsOf}).
 *
 * @example
 * ```ts
 * dropout(rec, { x: h, y: hDropped, n: tokens * hidden, p: 0.1, key: [seed, Purpose.dropout, step, 7] });
 * ```
 */
export function dropout(
  rec: Recorder,
  a: { x: GPUBuffer; y: GPUBuffer; n: number; p: number; key: DropoutKey; rowsOf?: RowsOf },
): void {
  const k = "dropout";
  requireElements(k, "x", a.x, a.n);
  requireElements(k, "y", a.y, a.n);
  requireDropout(k, a.p, a.key);
  requireRowsOf(k, a.rowsOf, a.n);
  if (a.p === 0) {
    if (a.x !== a.y && a.n > 0) rec.copy(a.x, 0, a.y, 0, a.n * 4);
    return;
  }
  record(rec, k, a.x, a.y, a.n, a.p, a.key, false, a.rowsOf);
}

/**
 * Backward of `dropout` with the same p and key: `dx[i] (=|+=) keep(i) ? dy[i]/(1−p) : 0`.
 * With `accumulate` the result is added to dx (default: overwritten); without it dy and dx may be the same
 * buffer (in place). `rowsOf` as for {@link dropout}.
 */
export function dropoutBackward(
  rec: Recorder,
  a: {
    dy: GPUBuffer;
    dx: GPUBuffer;
    n: number;
    p: number;
    key: DropoutKey;
    accumulate?: boolean;
    rowsOf?: RowsOf;
  },
): void {
  const k = "dropoutBackward";
  requireElements(k, "dy", a.dy, a.n);
  requireElements(k, "dx", a.dx, a.n);
  requireDropout(k, a.p, a.key);
  requireRowsOf(k, a.rowsOf, a.n);
  const acc = a.accumulate ?? false;
  if (a.p === 0 && !acc) {
    if (a.dy !== a.dx && a.n > 0) rec.copy(a.dy, 0, a.dx, 0, a.n * 4);
    return;
  }
  if (acc) requireDistinct(k, ["dy", "dx"], [a.dy, a.dx]);
  record(rec, k, a.dy, a.dx, a.n, a.p, a.key ?? [0, 0, 0, 0], acc, a.rowsOf);
}
