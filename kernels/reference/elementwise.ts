/**
 * Float64 references for `kernels/elementwise.ts`: plain loops on Float64Array, used by tests and by the
 * model's float64 reference.
 * @module
 */

/** `a + b`, elementwise. */
export function addRef(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  if (a.length !== b.length) throw new Error(`addRef: lengths differ (${a.length} vs ${b.length})`);
  const o = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) o[i] = a[i] + b[i];
  return o;
}

/** `y + alpha·x`, elementwise (returns a new array). */
export function addInPlaceRef(x: ArrayLike<number>, y: ArrayLike<number>, alpha = 1): Float64Array {
  if (x.length !== y.length) throw new Error(`addInPlaceRef: lengths differ (${x.length} vs ${y.length})`);
  const o = new Float64Array(y.length);
  for (let i = 0; i < y.length; i++) o[i] = y[i] + alpha * x[i];
  return o;
}

/** `alpha·x`, elementwise (returns a new array). */
export function scaleRef(x: ArrayLike<number>, alpha: number): Float64Array {
  const o = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) o[i] = alpha * x[i];
  return o;
}

/** Column sums of x [rows, ldx] over the first `cols` columns, plus `init` when given (accumulate). */
export function sumRowsRef(
  x: ArrayLike<number>,
  rows: number,
  cols: number,
  ldx = cols,
  init?: ArrayLike<number>,
): Float64Array {
  const o = new Float64Array(cols);
  for (let j = 0; j < cols; j++) {
    let s = init ? init[j] : 0;
    for (let i = 0; i < rows; i++) s += x[i * ldx + j];
    o[j] = s;
  }
  return o;
}

/** `x[i, j] · mask[j]` for x [rows, cols]. */
export function maskColumnsRef(x: ArrayLike<number>, mask: ArrayLike<number>, rows: number, cols: number) {
  const o = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) o[i * cols + j] = x[i * cols + j] * mask[j];
  return o;
}

/** `x[i, j] · mask[i]` for x [rows, cols]. */
export function maskRowsRef(x: ArrayLike<number>, mask: ArrayLike<number>, rows: number, cols: number) {
  const o = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) o[i * cols + j] = x[i * cols + j] * mask[i];
  return o;
}
