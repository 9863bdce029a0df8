/**
 * Activations: exact-erf GELU (RoBERTa's `hidden_act = "gelu"`) and tanh (classification head), forward and
 * backward. WGSL has no erf, so `ERF_WGSL` implements it: for |z| < 1.25 the Taylor series (17 terms, Horner
 * in z², alternating terms that cancel by less than a factor 2 there), for |z| ≥ 1.25 erfc(z) = t·e^(g(t) − z²)
 * with t = 1/(1 + z/2) and g a degree-8 Chebyshev interpolant fitted at load time from the float64 reference
 * erfc; e^(g − z²) uses an exact split of z² and Cody-Waite range reduction (WGSL's exp loses ~2e-6 relative
 * at arguments near −25 on llvmpipe; exp of a reduced argument does not).
 *
 * Profiler convention: flops per element are nominal counts of the arithmetic (GELU forward 60, backward 65,
 * tanh forward 10, backward 3); bytes = 4 × (elements read + written).
 * @module
 */
import type { Recorder } from "./recorder.ts";
import { requireDistinct, requireElements } from "./elementwise.ts";
import { elementwiseMap } from "./elementwise_map.ts";
import { erfcRef } from "./reference/activation.ts";

/** Taylor coefficients of erf(z)/z in powers of z²: 2/√π · (−1)ⁿ / (n!·(2n+1)), n = 0..16 (float64 on the host). */
const ERF_TAYLOR: number[] = (() => {
  const c: number[] = [];
  let fact = 1;
  for (let n = 0; n <= 16; n++) {
    if (n > 0) fact *= n;
    c.push((2 / Math.sqrt(Math.PI)) * (n % 2 ? -1 : 1) / (fact * (2 * n + 1)));
  }
  return c;
})();

/** Horner evaluation of ERF_TAYLOR in `z2` as a WGSL expression. */
const ERF_HORNER = ERF_TAYLOR.reduceRight(
  (acc, c, i) =>
    i === ERF_TAYLOR.length - 1 ? `${c.toExponential(17)}` : `fma(${acc}, z2, ${c.toExponential(17)})`,
  "",
);

/** Range of the erfc fit: erfc(u) for ERFC_FIT_LO ≤ u ≤ ERFC_FIT_HI, in the variable t = 1/(1 + u/2). */
const ERFC_FIT_LO = 1.25, ERFC_FIT_HI = 10;
const T_A = 1 / (1 + ERFC_FIT_HI / 2), T_B = 1 / (1 + ERFC_FIT_LO / 2);

/**
 * Chebyshev interpolant (degree 8, at Chebyshev nodes, computed here in float64 from the reference erfc) of
 * g(t) = ln(erfc(u)/t) + u², so that erfc(u) = t·e^(g(t) − u²). Its float64 error is 1.2e-9 in g, i.e. a
 * relative error of 1.2e-9 in erfc (checked in tests through the WGSL erf).
 */
const ERFC_CHEBYSHEV: number[] = (() => {
  const n = 9;
  const c = new Array<number>(n).fill(0);
  for (let j = 0; j < n; j++) {
    const theta = Math.PI * (j + 0.5) / n;
    const t = (Math.cos(theta) * (T_B - T_A) + T_A + T_B) / 2;
    const u = 2 * (1 / t - 1);
    const g = Math.log(erfcRef(u) / t) + u * u;
    for (let k = 0; k < n; k++) c[k] += (2 / n) * g * Math.cos(k * theta);
  }
  c[0] /= 2;
  return c;
})();

/** WGSL statements evaluating ERFC_CHEBYSHEV at `s` by Clenshaw's recurrence into `g`. */
const ERFC_CLENSHAW = (() => {
  const lit = (v: number) => v.toExponential(17);
  const c = ERFC_CHEBYSHEV;
  let code = "var b1 = 0.0;\n  var b2 = 0.0;\n";
  for (let k = c.length - 1; k >= 1; k--) {
    code += `  { let b0 = fma(2.0 * s, b1, ${lit(c[k])}) - b2; b2 = b1; b1 = b0; }\n`;
  }
  return code + `  let g = fma(s, b1, ${lit(c[0])}) - b2;`;
})();

/**
 * WGSL: `erf_f32(x)` and `normal_cdf(x)` = ½(1 + erf(x/√2)); the latter uses erfc directly in the tails so
 * that Φ(x) keeps its relative accuracy for negative x (GELU of large negative inputs).
 * Measured on llvmpipe (tests/kernels_activation.test.ts): erf max absolute error 1.6e-7 over [−6, 6]
 * (about 3 ulp, near |z| = 1.25; bounded there by 2e-7), GELU relative error ≤ 4.1e-7 for −7 < x < −2.
 */
export const ERF_WGSL = /* wgsl */ `
// e^(-(a + b)) for a >= 0 held exactly and b small, accurate to a few ulp for large a: Cody-Waite reduction
// a = k·ln2 + r with ln2 split in a 12-bit head (k·head exact) and a tail; exp(-(r + b))·2^-k.
fn exp_neg_split(a: f32, b: f32) -> f32 {
  let k = round(a * 1.4426950408889634);
  let r = (a - k * 0.693115234375) - k * 3.194618494528623e-5;
  return ldexp(exp(-(r + b)), -i32(k));
}
// Splits v^2 * s (s = 1 or 1/2) into an exact head and a small tail: vh keeps 12 significant bits.
fn square_split(v: f32, s: f32) -> vec2<f32> {
  let vh = bitcast<f32>(bitcast<u32>(v) & 0xfffff000u);
  return vec2<f32>(vh * vh * s, (v - vh) * (v + vh) * s);
}
// erf(z) for |z| < 1.25: Taylor series (17 terms) by Horner in z^2.
fn erf_taylor(z: f32) -> f32 {
  let z2 = z * z;
  return z * ${ERF_HORNER};
}
// erfc(u) for 1.25 <= u with u^2 = sq.x + sq.y: erfc(u) = t·e^(g(t) - u^2), t = 1/(1 + u/2), g a degree-8
// Chebyshev interpolant in t (fitted on the host from the float64 reference erfc).
fn erfc_tail(u0: f32, sq: vec2<f32>) -> f32 {
  let u = min(u0, ${ERFC_FIT_HI.toFixed(1)});
  let t = 1.0 / (1.0 + 0.5 * u);
  let s = fma(t, ${(2 / (T_B - T_A)).toExponential(17)}, ${(-(T_A + T_B) / (T_B - T_A)).toExponential(17)});
  ${ERFC_CLENSHAW}
  return t * exp_neg_split(sq.x, sq.y - g);
}
fn erf_f32(x: f32) -> f32 {
  let z = abs(x);
  if (z < 1.25) { return erf_taylor(x); }
  let r = 1.0 - erfc_tail(z, square_split(min(z, 10.0), 1.0));
  return select(r, -r, x < 0.0);
}
fn normal_cdf(x: f32) -> f32 {
  let z = x * 0.7071067811865476;
  if (abs(z) < 1.25) { return 0.5 + 0.5 * erf_taylor(z); }
  // z^2 = x^2 / 2 from x itself, so the rounding of x/sqrt(2) does not enter the exponent
  let tail = 0.5 * erfc_tail(abs(z), square_split(min(abs(x), 14.0), 0.5));
  return select(1.0 - tail, tail, z < 0.0);
}
`;

const GELU_OP = "return v0 * normal_cdf(v0);";
const GELU_BACKWARD_OP = `let pdf = exp(-0.5 * v0 * v0) * 0.3989422804014327;
  return v1 * (normal_cdf(v0) + v0 * pdf);`;
// tanh saturates to ±1 in f32 beyond |x| = 9.1; clamping avoids inf/inf in exp-based implementations.
const TANH_OP = "return tanh(clamp(v0, -10.0, 10.0));";
// from the saved output t = v0: (1 − t)(1 + t) has no cancellation when |t| is near 1
const TANH_BACKWARD_OP = "return v1 * ((1.0 - v0) * (1.0 + v0));";

function launch(
  rec: Recorder,
  label: string,
  prelude: string,
  op: string,
  inputs: GPUBuffer[],
  out: GPUBuffer,
  n: number,
  flopsPerElement: number,
): void {
  elementwiseMap(rec, {
    label,
    prelude,
    op,
    inputs,
    out,
    n,
    flopsPerElement,
    bytesPerElement: 4 * (inputs.length + 1),
  });
}

/**
 * Exact GELU `y = x·Φ(x) = ½x(1 + erf(x/√2))` over n elements (x and y must differ).
 *
 * @example
 * ```ts
 * gelu(rec, { x: preActivation, y: activation, n: tokens * intermediate });
 * ```
 */
export function gelu(rec: Recorder, a: { x: GPUBuffer; y: GPUBuffer; n: number }): void {
  const k = "gelu";
  requireElements(k, "x", a.x, a.n);
  requireElements(k, "y", a.y, a.n);
  requireDistinct(k, ["x", "y"], [a.x, a.y]);
  launch(rec, k, ERF_WGSL, GELU_OP, [a.x], a.y, a.n, 60);
}

/** GELU backward from the saved input: `dx = dy·(Φ(x) + x·φ(x))` (dx must differ from x and dy). */
export function geluBackward(
  rec: Recorder,
  a: { x: GPUBuffer; dy: GPUBuffer; dx: GPUBuffer; n: number },
): void {
  const k = "geluBackward";
  requireElements(k, "x", a.x, a.n);
  requireElements(k, "dy", a.dy, a.n);
  requireElements(k, "dx", a.dx, a.n);
  requireDistinct(k, ["x", "dx"], [a.x, a.dx]);
  requireDistinct(k, ["dy", "dx"], [a.dy, a.dx]);
  launch(rec, k, ERF_WGSL, GELU_BACKWARD_OP, [a.x, a.dy], a.dx, a.n, 65);
}

/** `y = tanh(x)` over n elements (x and y must differ). */
export function tanhForward(rec: Recorder, a: { x: GPUBuffer; y: GPUBuffer; n: number }): void {
  const k = "tanhForward";
  requireElements(k, "x", a.x, a.n);
  requireElements(k, "y", a.y, a.n);
  requireDistinct(k, ["x", "y"], [a.x, a.y]);
  launch(rec, k, "", TANH_OP, [a.x], a.y, a.n, 10);
}

/** tanh backward from the saved output: `dx = dy·(1 − y²)` (dx must differ from y and dy). */
export function tanhBackward(
  rec: Recorder,
  a: { y: GPUBuffer; dy: GPUBuffer; dx: GPUBuffer; n: number },
): void {
  const k = "tanhBackward";
  requireElements(k, "y", a.y, a.n);
  requireElements(k, "dy", a.dy, a.n);
  requireElements(k, "dx", a.dx, a.n);
  requireDistinct(k, ["y", "dx"], [a.y, a.dx]);
  requireDistinct(k, ["dy", "dx"], [a.dy, a.dx]);
  launch(rec, k, "", TANH_BACKWARD_OP, [a.y, a.dy], a.dx, a.n, 3);
}
