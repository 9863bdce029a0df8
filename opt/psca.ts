/**
 * Penalised successive convex approximation (P-SCA): a fast local method for min G(γ) s.t. Σ ĝ_k(γ_k) ≤ 1.
 * At the iterate γ⁽ⁱ⁾ the concave a1·λ·s̄ is replaced by its tangent and Φ_gap(s̄) is majorised by Jensen,
 * Σ w_k Φ̂(s̄⁽ⁱ⁾ + σ(γ_k) − σ(γ_k⁽ⁱ⁾)), so the surrogate separates over devices and is convex in each γ_k.
 * The bandwidth constraint, relaxed with a slack priced λ_pen, is handled by bisection on its multiplier
 * μ ∈ [0, λ_pen] (warm-started); each device is solved by bisection on its derivative. λ_pen grows ×10 until
 * the slack is 0. Runs from γ = 0.3, γ = γ_max and a seeded random start and keeps the best.
 *
 * @example
 * ```ts
 * const r = solvePsca(buildProblem(sc));
 * console.log(r.objective, r.gamma, r.starts.map((s) => s.iterations));
 * ```
 * @module
 */
import { dPhi, dPhiGap, dSigma, sigma } from "./bound.ts";
import { type Problem, pushToAffordable } from "./problem.ts";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";

/** One P-SCA start. */
export interface PscaStart {
  name: string;
  gamma: number[];
  objective: number;
  iterations: number;
  timeS: number;
}

/** Outcome of P-SCA (best of the starts). */
export interface PscaResult {
  gamma: number[];
  objective: number;
  starts: PscaStart[];
  timeS: number;
}

/** Options of P-SCA. */
export interface PscaOptions {
  /** Seed of the random start (defaults to the scenario seed). */
  seed?: number;
  /** Stop when the objective changes by less than this, relatively (1e-6). */
  relTol?: number;
  maxIterations?: number;
  /** Which starts to run (all three by default). */
  starts?: ("0.3" | "gamma_max" | "random")[];
}

/** Solves one device's convexified subproblem: argmin over [lo, hi] of its surrogate + μ·ĝ_k. */
function solveDevice(prob: Problem, k: number, it: number[], sbar: number, mu: number, lo: number): number {
  const b = prob.bound, n = prob.n, wk = prob.w[k], tab = prob.tables[k];
  const hi = prob.gammaMax;
  const lin = b.a1 * b.lambda * wk * dSigma(it[k]);
  const s0 = sbar - sigma(it[k]);
  const deriv = (g: number) => {
    let d = lin + wk * dPhiGap(b, n, s0 + sigma(g)) * dSigma(g) + b.a2 * wk * wk * dPhi(g);
    if (mu > 0) d += mu * tab.slope(g);
    return d;
  };
  if (!(hi > lo)) return hi;
  if (deriv(lo) >= 0) return lo;
  if (deriv(hi - 1e-12) <= 0) return hi;
  let a = lo, c = hi;
  for (let i = 0; i < 60; i++) {
    const m = 0.5 * (a + c);
    if (deriv(m) < 0) a = m;
    else c = m;
  }
  return 0.5 * (a + c);
}

function runStart(prob: Problem, start: number[], name: string, relTol: number, maxIt: number): PscaStart {
  const t0 = performance.now();
  const K = prob.w.length;
  const lows = prob.tables.map((t) => t.minGamma);
  let gamma = start.map((g, k) => Math.min(prob.gammaMax, Math.max(lows[k], g)));
  let bestG = Infinity, best: number[] | undefined;
  let prev = Infinity, iterations = 0;
  let muPrev = 0;
  const minus = prob.gammaMax;
  for (; iterations < maxIt; iterations++) {
    const it = gamma;
    const sbar = prob.objective(it).sbar;
    const at = (mu: number) => it.map((_, k) => solveDevice(prob, k, it, sbar, mu, lows[k]));
    let next = at(0);
    if (prob.usage(next) > 1) {
      // penalty price: grow until the slack vanishes, then bisect μ (warm-started around the last μ)
      let pen = 1;
      while (prob.usage(at(pen)) > 1 && pen < 1e9) pen *= 10;
      let lo = 0, hi = pen;
      if (muPrev > 0 && muPrev < pen) {
        const a = at(muPrev / 2), c = at(Math.min(pen, muPrev * 2));
        if (prob.usage(a) > 1) lo = muPrev / 2;
        if (prob.usage(c) <= 1) hi = Math.min(pen, muPrev * 2);
      }
      for (let i = 0; i < 60 && hi - lo > 1e-12 * hi; i++) {
        const m = 0.5 * (lo + hi);
        if (prob.usage(at(m)) > 1) lo = m;
        else hi = m;
      }
      muPrev = hi;
      next = at(hi);
      if (prob.usage(next) > 1) next = pushToAffordable(prob, next, new Array(K).fill(minus)) ?? next;
    } else muPrev = 0;
    gamma = next;
    const g = prob.objective(gamma).G;
    if (prob.usage(gamma) <= 1 && g < bestG) {
      bestG = g;
      best = gamma.slice();
    }
    if (Math.abs(prev - g) <= relTol * Math.abs(g)) {
      iterations++;
      break;
    }
    prev = g;
  }
  if (!best) {
    best = pushToAffordable(prob, gamma, new Array(K).fill(prob.gammaMax))!;
    bestG = prob.objective(best).G;
  }
  return { name, gamma: best, objective: bestG, iterations, timeS: (performance.now() - t0) / 1000 };
}

/** P-SCA from three starts (0.3, γ_max, seeded random); returns the best. Assumes γ_max is affordable. */
export function solvePsca(prob: Problem, opts: PscaOptions = {}): PscaResult {
  const t0 = performance.now();
  const K = prob.w.length;
  const relTol = opts.relTol ?? 1e-6, maxIt = opts.maxIterations ?? 200;
  const which = opts.starts ?? ["0.3", "gamma_max", "random"];
  const r = new KeyedRandom([opts.seed ?? prob.scenario.seed, Purpose.psca, 1]);
  const starts: PscaStart[] = [];
  for (const s of which) {
    let g: number[];
    if (s === "0.3") g = new Array(K).fill(0.3);
    else if (s === "gamma_max") g = new Array(K).fill(prob.gammaMax);
    else g = Array.from({ length: K }, () => r.uniform() * prob.gammaMax);
    starts.push(runStart(prob, g, s, relTol, maxIt));
  }
  let best = starts[0];
  for (const s of starts) if (s.objective < best.objective) best = s;
  return { gamma: best.gamma, objective: best.objective, starts, timeS: (performance.now() - t0) / 1000 };
}
