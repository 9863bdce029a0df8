/**
 * Float64 reference for `kernels/layernorm.ts`: row-wise LayerNorm with biased variance (as torch), and its
 * input gradient for frozen gamma/beta.
 * @module
 */

/** Outputs of `layerNormRef`. */
export interface LayerNormRefResult {
  /** Normalised, scaled and shifted rows [rows, cols]. */
  y: Float64Array;
  /** Row means [rows]. */
  mean: Float64Array;
  /** Row reciprocal standard deviations 1/sqrt(var + eps) [rows]. */
  rstd: Float64Array;
}

/**
 * `y = (x − mean)·rstd·gamma + beta` per row of x [rows, cols].
 *
 * @example
 * ```ts
 * const { y, mean, rstd } = layerNormRef(x, gamma, beta, tokens, hidden, 1e-5);
 * ```
 */
export function layerNormRef(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  rows: number,
  cols: number,
  eps: number,
): LayerNormRefResult {
  const y = new Float64Array(rows * cols), mean = new Float64Array(rows), rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[r * cols + c];
    const mu = s / cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[r * cols + c] - mu) ** 2;
    const rs = 1 / Math.sqrt(v / cols + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let c = 0; c < cols; c++) y[r * cols + c] = (x[r * cols + c] - mu) * rs * gamma[c] + beta[c];
  }
  return { y, mean, rstd };
}

/**
 * Input gradient of LayerNorm with frozen gamma/beta, from the saved mean/rstd:
 * g = dy·gamma, x̂ = (x − mean)·rstd, dx = rstd·(g − mean(g) − x̂·mean(g·x̂)). Adds to `init` when given.
 */
export function layerNormBackwardRef(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  mean: ArrayLike<number>,
  rstd: ArrayLike<number>,
  rows: number,
  cols: number,
  init?: ArrayLike<number>,
): Float64Array {
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let sg = 0, sgx = 0;
    for (let c = 0; c < cols; c++) {
      const g = dy[r * cols + c] * gamma[c];
      sg += g;
      sgx += g * (x[r * cols + c] - mean[r]) * rstd[r];
    }
    sg /= cols;
    sgx /= cols;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const xh = (x[i] - mean[r]) * rstd[r];
      dx[i] = (init ? init[i] : 0) + rstd[r] * (dy[i] * gamma[c] - sg - xh * sgx);
    }
  }
  return dx;
}
