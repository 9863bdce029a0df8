/**
 * Float64 reference for `kernels/lora.ts`: FedLoDrop-masked LoRA forward and backward with lora_dropout
 * driven by the shared counter-based RNG (`keepKey`), so the mask equals the WGSL kernels' mask bit for bit.
 * @module
 */
import { keepKey } from "../rng.ts";
import { rowsOfIndex } from "../dropout.ts";

/** Shapes and hyper-parameters shared by the LoRA references. */
export interface LoraRefShape {
  /** Rows of x (tokens). */
  m: number;
  /** Input features (columns of x and of A). */
  nIn: number;
  /** Output features (rows of B). */
  nOut: number;
  /** LoRA rank. */
  r: number;
  /** LoRA scale s = alpha / r. */
  scale: number;
  /** lora_dropout rate p in [0, 1); 0 means none. */
  dropout?: number;
  /** Dropout key [k0, k1, k2, k3]; element (row, col) of x uses index row*nIn + col. */
  dropKey?: [number, number, number, number];
  /** x holds every `rowsEvery`-th row of a larger input, whose masks it takes (row·rowsEvery·nIn + col). */
  rowsEvery?: number;
}

/** The dropout multiplier of x[row, col]: 0 when dropped, 1/(1-p) when kept, 1 when p = 0. */
export function loraDropFactor(s: LoraRefShape, index: number): number {
  const p = s.dropout ?? 0;
  if (p === 0) return 1;
  const [k0, k1, k2, k3] = s.dropKey ?? [0, 0, 0, 0];
  const at = rowsOfIndex(index, { cols: s.nIn, every: s.rowsEvery ?? 1 });
  return keepKey(p, k0, k1, k2, k3, at) ? 1 / (1 - p) : 0;
}

/** xd = drop(x) ⊙ mA (row-broadcast column mask), [m, nIn]. */
export function loraMaskedInputRef(
  s: LoraRefShape,
  x: ArrayLike<number>,
  maskA: ArrayLike<number>,
): Float64Array {
  const xd = new Float64Array(s.m * s.nIn);
  for (let i = 0; i < s.m; i++) {
    for (let c = 0; c < s.nIn; c++) {
      const idx = i * s.nIn + c;
      xd[idx] = maskA[c] === 0 ? 0 : x[idx] * loraDropFactor(s, idx) * maskA[c];
    }
  }
  return xd;
}

/**
 * Forward: t = (drop(x) ⊙ mA) Aᵀ  [m, r];  y + s·(t Bᵀ) ⊙ mB  [m, nOut] (returns new arrays; `y0` is the
 * input value of y, i.e. x Wᵀ + b).
 *
 * @example
 * ```ts
 * const { t, y } = loraForwardRef({ m, nIn, nOut, r, scale: 2 }, x, a, b, maskA, maskB, y0);
 * ```
 */
export function loraForwardRef(
  s: LoraRefShape,
  x: ArrayLike<number>,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  maskA: ArrayLike<number>,
  maskB: ArrayLike<number>,
  y0: ArrayLike<number>,
): { t: Float64Array; y: Float64Array } {
  const { m, nIn, nOut, r, scale } = s;
  const xd = loraMaskedInputRef(s, x, maskA);
  const t = new Float64Array(m * r);
  for (let i = 0; i < m; i++) {
    for (let q = 0; q < r; q++) {
      let acc = 0;
      for (let c = 0; c < nIn; c++) acc += xd[i * nIn + c] * a[q * nIn + c];
      t[i * r + q] = acc;
    }
  }
  const y = Float64Array.from(y0);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < nOut; j++) {
      if (maskB[j] === 0) continue;
      let acc = 0;
      for (let q = 0; q < r; q++) acc += t[i * r + q] * b[j * r + q];
      y[i * nOut + j] += scale * acc * maskB[j];
    }
  }
  return { t, y };
}

/**
 * Backward of {@link loraForwardRef}: dB = s·((dy ⊙ mB)ᵀ t), dt = s·(dy ⊙ mB) B, dA = dtᵀ (drop(x) ⊙ mA),
 * dx = drop'((dt A) ⊙ mA) (the contribution only; the caller adds it to the frozen path's dx).
 */
export function loraBackwardRef(
  s: LoraRefShape,
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  maskA: ArrayLike<number>,
  maskB: ArrayLike<number>,
  t: ArrayLike<number>,
): { dA: Float64Array; dB: Float64Array; dt: Float64Array; dx: Float64Array } {
  const { m, nIn, nOut, r, scale } = s;
  const dB = new Float64Array(nOut * r);
  const dt = new Float64Array(m * r);
  for (let j = 0; j < nOut; j++) {
    if (maskB[j] === 0) continue;
    for (let q = 0; q < r; q++) {
      let acc = 0;
      for (let i = 0; i < m; i++) acc += dy[i * nOut + j] * t[i * r + q];
      dB[j * r + q] = scale * maskB[j] * acc;
    }
  }
  for (let i = 0; i < m; i++) {
    for (let q = 0; q < r; q++) {
      let acc = 0;
      for (let j = 0; j < nOut; j++) acc += dy[i * nOut + j] * maskB[j] * b[j * r + q];
      dt[i * r + q] = scale * acc;
    }
  }
  const xd = loraMaskedInputRef(s, x, maskA);
  const dA = new Float64Array(r * nIn);
  for (let q = 0; q < r; q++) {
    for (let c = 0; c < nIn; c++) {
      let acc = 0;
      for (let i = 0; i < m; i++) acc += dt[i * r + q] * xd[i * nIn + c];
      dA[q * nIn + c] = acc;
    }
  }
  const dx = new Float64Array(m * nIn);
  for (let i = 0; i < m; i++) {
    for (let c = 0; c < nIn; c++) {
      if (maskA[c] === 0) continue;
      let acc = 0;
      for (let q = 0; q < r; q++) acc += dt[i * r + q] * a[q * nIn + c];
      const idx = i * nIn + c;
      dx[idx] = acc * maskA[c] * loraDropFactor(s, idx);
    }
  }
  return { dA, dB, dt, dx };
}
