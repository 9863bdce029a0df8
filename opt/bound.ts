/**
 * The objective: an upper bound G(γ) on the generalisation error of FedLoDrop,
 * G = Φ_emp + Φ_gap with s̄ = Σ w_k σ(γ_k), σ(γ) = 2γ − γ², φ(γ) = γ/(1 − γ),
 * Φ_gap(s) = sqrt((M² + 24Mρ²/(Λ + 2λs)) / (2Nδ)), Φ_emp = e0 + a1·λ·s̄ + a2·Σ w_k² φ(γ_k).
 *
 * @example
 * ```ts
 * const obj = boundObjective(sc.bound, [855, 1200], [0.4, 0.4]);
 * console.log(obj.G, obj.gap, obj.emp);
 * ```
 * @module
 */

/** Constants of the bound (scenario `bound` object). */
export interface BoundConstants {
  M: number;
  rho: number;
  Lambda: number;
  lambda: number;
  delta: number;
  e0: number;
  a1: number;
  a2: number;
}

/** σ(γ) = 2γ − γ²: expected fraction of a LoRA product's entries touched by a row/column mask pair. */
export function sigma(g: number): number {
  return 2 * g - g * g;
}

/** σ'(γ) = 2 − 2γ. */
export function dSigma(g: number): number {
  return 2 - 2 * g;
}

/** φ(γ) = γ/(1 − γ). */
export function phi(g: number): number {
  return g / (1 - g);
}

/** φ'(γ) = 1/(1 − γ)². */
export function dPhi(g: number): number {
  return 1 / ((1 - g) * (1 - g));
}

/** Φ_gap(s) for s ≥ 0, extended linearly below 0 (Φ̂ of P-SCA; equal to Φ_gap on s ≥ 0). */
export function phiGap(b: BoundConstants, n: number, s: number): number {
  if (s < 0) return phiGap(b, n, 0) + dPhiGap(b, n, 0) * s;
  return Math.sqrt(
    (b.M * b.M + 24 * b.M * b.rho * b.rho / (b.Lambda + 2 * b.lambda * s)) / (2 * n * b.delta),
  );
}

/** dΦ_gap/ds (constant below 0, matching the linear extension). */
export function dPhiGap(b: BoundConstants, n: number, s: number): number {
  const ss = Math.max(s, 0);
  const y = b.Lambda + 2 * b.lambda * ss;
  const val = phiGap(b, n, ss);
  return (-24 * b.M * b.rho * b.rho * 2 * b.lambda / (y * y)) / (2 * n * b.delta) / (2 * val);
}

/** h(s) = a1·λ·s + Φ_gap(s), convex in s. */
export function hOf(b: BoundConstants, n: number, s: number): number {
  return b.a1 * b.lambda * s + phiGap(b, n, s);
}

/** h'(s). */
export function dH(b: BoundConstants, n: number, s: number): number {
  return b.a1 * b.lambda + dPhiGap(b, n, s);
}

/** Minimiser of h on [0, 1] (bisection on h', which is increasing). */
export function hMinimiser(b: BoundConstants, n: number): number {
  if (dH(b, n, 0) >= 0) return 0;
  if (dH(b, n, 1) <= 0) return 1;
  let lo = 0, hi = 1;
  for (let i = 0; i < 80; i++) {
    const m = 0.5 * (lo + hi);
    if (dH(b, n, m) < 0) lo = m;
    else hi = m;
  }
  return 0.5 * (lo + hi);
}

/** Sample weights w_k = N_k/N and the total N. */
export function sampleWeights(samples: number[]): { w: number[]; n: number } {
  const n = samples.reduce((a, x) => a + x, 0);
  return { w: samples.map((x) => x / n), n };
}

/** Value of the bound and its parts. */
export interface BoundValue {
  /** G = emp + gap. */
  G: number;
  /** Φ_gap. */
  gap: number;
  /** Φ_emp. */
  emp: number;
  /** s̄. */
  sbar: number;
}

/** Evaluates G(γ) for devices with the given sample counts. */
export function boundObjective(b: BoundConstants, samples: number[], gamma: ArrayLike<number>): BoundValue {
  if (gamma.length !== samples.length) {
    throw new Error(`gamma: expected ${samples.length} values (one per device), got ${gamma.length}`);
  }
  const { w, n } = sampleWeights(samples);
  let sbar = 0, var2 = 0;
  for (let k = 0; k < w.length; k++) {
    sbar += w[k] * sigma(gamma[k]);
    var2 += w[k] * w[k] * phi(gamma[k]);
  }
  const gap = phiGap(b, n, sbar);
  const emp = b.e0 + b.a1 * b.lambda * sbar + b.a2 * var2;
  return { G: gap + emp, gap, emp, sbar };
}
