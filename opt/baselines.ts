/**
 * Baselines for the comparison table: fixed γ for every device (0, 0.3 as in the reference code, and the
 * smallest common γ that is affordable, i.e. the largest affordable common payload), an equal bandwidth split
 * B_tot/K with the best γ for it (global, by B&B on the box it allows), and, for K ≤ 4, an exhaustive grid
 * (the oracle that the tests use to show B&B is globally optimal).
 *
 * @example
 * ```ts
 * const rows = [fixedGamma(prob, 0.3), await equalSplit(prob)];
 * for (const r of rows) console.log(r.name, r.feasible ? r.objective : r.reason);
 * ```
 * @module
 */
import { solveBnb } from "./bnb.ts";
import type { Problem } from "./problem.ts";
import { minBandwidth } from "./system_model.ts";

/** One baseline's answer. */
export interface BaselineResult {
  name: string;
  feasible: boolean;
  /** Why it is infeasible (when it is). */
  reason?: string;
  gamma: number[];
  objective: number;
  timeS: number;
}

/** The same γ for every device; infeasible when the devices cannot afford it (exact g_k). */
export function fixedGamma(prob: Problem, gamma: number, name = `fixed gamma ${gamma}`): BaselineResult {
  const t0 = performance.now();
  const g = new Array(prob.w.length).fill(gamma);
  const use = prob.exactUsage(g);
  const feasible = use <= 1;
  return {
    name,
    feasible,
    reason: feasible ? undefined : `needs ${(use * 100).toFixed(1)} % of the bandwidth`,
    gamma: g,
    objective: prob.objective(g).G,
    timeS: (performance.now() - t0) / 1000,
  };
}

/** Smallest common γ whose exact bandwidth need fits B_tot (bisection; γ_max when nothing smaller fits). */
export function smallestAffordableCommonGamma(prob: Problem): BaselineResult {
  const t0 = performance.now();
  const K = prob.w.length;
  const use = (g: number) => prob.exactUsage(new Array(K).fill(g));
  let lo = 0, hi = prob.gammaMax;
  if (use(0) <= 1) hi = 0;
  else {
    for (let i = 0; i < 40; i++) {
      const m = 0.5 * (lo + hi);
      if (use(m) <= 1) hi = m;
      else lo = m;
    }
  }
  const r = fixedGamma(prob, hi, "smallest affordable common gamma");
  return { ...r, timeS: (performance.now() - t0) / 1000 };
}

/** Equal bandwidth B_tot/K per device, with the globally best γ that this split allows. */
export async function equalSplit(prob: Problem): Promise<BaselineResult> {
  const t0 = performance.now();
  const sc = prob.scenario, K = prob.w.length;
  const share = sc.bandwidthHz / K;
  const lower: number[] = [];
  const bad: number[] = [];
  for (let k = 0; k < K; k++) {
    if (minBandwidth(sc, k, prob.gammaMax) > share) {
      bad.push(k);
      lower.push(prob.gammaMax);
      continue;
    }
    let lo = 0, hi = prob.gammaMax;
    if (minBandwidth(sc, k, 0) <= share) hi = 0;
    else {
      for (let i = 0; i < 40; i++) {
        const m = 0.5 * (lo + hi);
        if (minBandwidth(sc, k, m) <= share) hi = m;
        else lo = m;
      }
    }
    lower.push(hi);
  }
  if (bad.length > 0) {
    return {
      name: "equal bandwidth split",
      feasible: false,
      reason: `device(s) ${bad.join(", ")} cannot be served with B_tot/K even at gamma_max`,
      gamma: lower,
      objective: prob.objective(lower).G,
      timeS: (performance.now() - t0) / 1000,
    };
  }
  const r = await solveBnb(prob, { lower, upper: new Array(K).fill(prob.gammaMax), noBandwidth: true });
  return {
    name: "equal bandwidth split",
    feasible: true,
    gamma: r.gamma,
    objective: r.objective,
    timeS: (performance.now() - t0) / 1000,
  };
}

/**
 * Exhaustive search for K ≤ 4: a grid of spacing `step` over the first K − 1 rates and, for each grid
 * point, the best affordable value of the last rate (its affordable interval from the table interpolation,
 * dense sampling, then golden-section refinement). Uses the same ĝ (`Problem.gHat`) as B&B.
 */
export function gridOracle(prob: Problem, step = 0.01): BaselineResult {
  const t0 = performance.now();
  const K = prob.w.length;
  if (K > 4) throw new Error(`gridOracle: only for K <= 4 devices, got ${K}`);
  const gm = prob.gammaMax, last = K - 1;
  const gLast = (x: number) => prob.gHat(last, x);
  const axis: number[] = [];
  for (let i = 0; i * step < gm - 1e-12; i++) axis.push(i * step);
  axis.push(gm);
  const gamma = new Array(K).fill(0);
  let best: number[] | undefined, bestG = Infinity;
  const f = (x: number) => {
    gamma[last] = x;
    return prob.objective(gamma).G;
  };
  const visit = (d: number, used: number) => {
    if (used > 1) return;
    if (d < last) {
      for (const x of axis) {
        gamma[d] = x;
        visit(d + 1, used + prob.gHat(d, x));
      }
      return;
    }
    const room = 1 - used;
    if (!(gLast(gm) <= room)) return;
    let lo = 0, hi = gm;
    if (gLast(0) <= room) hi = 0;
    else {
      for (let i = 0; i < 50; i++) {
        const m = 0.5 * (lo + hi);
        if (gLast(m) <= room) hi = m;
        else lo = m;
      }
    }
    const a0 = hi, n = 40;
    let bi = 0, bv = Infinity;
    for (let i = 0; i <= n; i++) {
      const v = f(a0 + (gm - a0) * i / n);
      if (v < bv) {
        bv = v;
        bi = i;
      }
    }
    let a = a0 + (gm - a0) * Math.max(0, bi - 1) / n, b = a0 + (gm - a0) * Math.min(n, bi + 1) / n;
    const r = (Math.sqrt(5) - 1) / 2;
    for (let i = 0; i < 50; i++) {
      const c = b - r * (b - a), e = a + r * (b - a);
      if (f(c) < f(e)) b = e;
      else a = c;
    }
    for (const x of [0.5 * (a + b), a0 + (gm - a0) * bi / n]) {
      const v = f(x);
      if (v < bestG) {
        bestG = v;
        best = gamma.slice();
      }
    }
  };
  visit(0, 0);
  if (!best) {
    return {
      name: "grid",
      feasible: false,
      reason: "no affordable grid point",
      gamma,
      objective: Infinity,
      timeS: 0,
    };
  }
  return {
    name: "grid",
    feasible: true,
    gamma: best,
    objective: bestG,
    timeS: (performance.now() - t0) / 1000,
  };
}
