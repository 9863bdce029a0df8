/**
 * Float64 reference for `kernels/dropout.ts`: inverted dropout whose keep mask is the project's keyed hash
 * (`keepKey` from `kernels/rng.ts`), so it matches the WGSL kernel element for element.
 * @module
 */
import { keepKey } from "../rng.ts";
import { type RowsOf, rowsOfIndex } from "../dropout.ts";

/**
 * The keep mask (1 kept, 0 dropped) for `n` elements under rate `p` and `key`, starting at flat index
 * `start`; with `rowsOf`, the mask of those elements' places in the larger tensor. The rate is rounded to f32
 * first, exactly as the GPU compares it.
 */
export function dropoutMaskRef(
  n: number,
  p: number,
  key: readonly [number, number, number, number],
  start = 0,
  rowsOf?: RowsOf,
): Uint8Array {
  const pf = Math.fround(p);
  const m = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    m[i] = pf === 0 || keepKey(pf, key[0], key[1], key[2], key[3], rowsOfIndex(start + i, rowsOf)) ? 1 : 0;
  }
  return m;
}

/**
 * Inverted dropout: `y[i] = keep(i) ? x[i] / (1 − p) : 0`; p = 0 is the identity; `rowsOf` as for the kernel.
 *
 * @example
 * ```ts
 * const y = dropoutRef(x, 0.1, [seed, Purpose.dropout, step, 3]);
 * ```
 */
export function dropoutRef(
  x: ArrayLike<number>,
  p: number,
  key: readonly [number, number, number, number],
  rowsOf?: RowsOf,
): Float64Array {
  const m = dropoutMaskRef(x.length, p, key, 0, rowsOf);
  const s = 1 / (1 - p);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = m[i] ? x[i] * s : 0;
  return y;
}

/** Backward of inverted dropout: `dx[i] = keep(i) ? dy[i] / (1 − p) : 0` (the same mask as forward). */
export function dropoutBackwardRef(
  dy: ArrayLike<number>,
  p: number,
  key: readonly [number, number, number, number],
  rowsOf?: RowsOf,
): Float64Array {
  return dropoutRef(dy, p, key, rowsOf);
}
