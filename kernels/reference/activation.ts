/**
 * Float64 references for `kernels/activation.ts`: an accurate float64 erf (positive-term series below 2.5,
 * continued fraction for erfc above), exact-erf GELU and tanh with their backward passes.
 * @module
 */

const TWO_OVER_SQRT_PI = 1.1283791670955126;
const INV_SQRT_PI = 0.5641895835477563;

/** erfc(z) for z ≥ 2.5 by its continued fraction z + (1/2)/(z + 1/(z + (3/2)/(z + …))), evaluated backwards. */
function erfcContinuedFraction(z: number): number {
  let f = z;
  for (let k = 300; k >= 1; k--) f = z + (k / 2) / f;
  return Math.exp(-z * z) * INV_SQRT_PI / f;
}

/** erf(z) for 0 ≤ z < 2.5 by erf(z) = 2/√π · e^(−z²) · Σₙ (2z²)ⁿ z / (1·3·…·(2n+1)) (all terms positive). */
function erfSeries(z: number): number {
  const z2 = z * z;
  let term = z, sum = z;
  for (let n = 1; n < 200; n++) {
    term *= 2 * z2 / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-18) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-z2) * sum;
}

/**
 * The error function in float64 (relative error ~1e-15).
 *
 * @example
 * ```ts
 * erfRef(1); // 0.8427007929497149
 * ```
 */
export function erfRef(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const z = Math.abs(x);
  const r = z < 2.5 ? erfSeries(z) : 1 - erfcContinuedFraction(z);
  return x < 0 ? -r : r;
}

/** erf by the two methods at one point (for continuity checks in tests): [series, 1 − continued fraction]. */
export function erfBothMethodsRef(z: number): [number, number] {
  return [erfSeries(z), 1 - erfcContinuedFraction(z)];
}

/** The complementary error function 1 − erf(x) in float64, without cancellation in the upper tail. */
export function erfcRef(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const z = Math.abs(x);
  const tail = z < 2.5 ? 1 - erfSeries(z) : erfcContinuedFraction(z);
  return x < 0 ? 2 - tail : tail;
}

/** Standard normal CDF Φ(x) = ½ erfc(−x/√2) (accurate relative to Φ itself for negative x too). */
export function normalCdfRef(x: number): number {
  return 0.5 * erfcRef(-x / Math.SQRT2);
}

/** Exact GELU: x·Φ(x), elementwise. */
export function geluRef(x: ArrayLike<number>): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i] * normalCdfRef(x[i]);
  return y;
}

/** GELU backward: dx = dy·(Φ(x) + x·φ(x)), φ the standard normal density. */
export function geluBackwardRef(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const pdf = Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI);
    dx[i] = dy[i] * (normalCdfRef(v) + v * pdf);
  }
  return dx;
}

/** tanh, elementwise. */
export function tanhRef(x: ArrayLike<number>): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = Math.tanh(x[i]);
  return y;
}

/** tanh backward from the output: dx = dy·(1 − y²). */
export function tanhBackwardRef(y: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(y.length);
  for (let i = 0; i < y.length; i++) dx[i] = dy[i] * (1 - y[i] * y[i]);
  return dx;
}
