/**
 * The reduced problem in γ alone, shared by B&B, P-SCA and the baselines:
 * min G(γ) s.t. Σ_k ĝ_k(γ_k) ≤ 1 (bandwidth in units of B_tot), γ ∈ [0, γ_max]^K,
 * with ĝ_k tabulated (`BandwidthTable`), and helpers to make a point affordable.
 *
 * @example
 * ```ts
 * const prob = buildProblem(sc);
 * const g = pushToAffordable(prob, prob.lower(), prob.upper()); // undefined when even γ_max is unaffordable
 * ```
 * @module
 */
import { type BoundConstants, boundObjective, type BoundValue, sampleWeights } from "./bound.ts";
import { drawScenarioJson, parseScenario, type Scenario } from "./scenario.ts";
import { BandwidthTable, buildTables, minBandwidth } from "./system_model.ts";

/** The reduced problem. */
export interface Problem {
  scenario: Scenario;
  bound: BoundConstants;
  samples: number[];
  /** w_k = N_k/N. */
  w: number[];
  /** N. */
  n: number;
  gammaMax: number;
  tables: BandwidthTable[];
  /** G and its parts at γ. */
  objective(gamma: ArrayLike<number>): BoundValue;
  /**
   * ĝ_k(γ) as the search sees it: the table interpolation (≥ the exact value when ĝ_k is convex), or the
   * exact value where the interpolation is undefined (next to the edge of the device's affordable range).
   */
  gHat(k: number, gamma: number): number;
  /** Σ_k gHat(k, γ_k). */
  usage(gamma: ArrayLike<number>): number;
  /** Σ g_k(γ_k)/B_tot with the exact g_k (bisection). */
  exactUsage(gamma: ArrayLike<number>): number;
  /** ĝ_k(γ) = g_k(γ)/B_tot with the exact g_k (bisection, cached per device and γ). */
  exactG(k: number, gamma: number): number;
}

/** Builds the reduced problem (tabulates every g_k on `points` grid points). */
export function buildProblem(sc: Scenario, points = 901): Problem {
  const samples = sc.devices.map((d) => d.samples);
  const { w, n } = sampleWeights(samples);
  const tables = buildTables(sc, points);
  const cache = sc.devices.map(() => new Map<number, number>());
  const exactG = (k: number, gamma: number) => {
    let v = cache[k].get(gamma);
    if (v === undefined) {
      v = minBandwidth(sc, k, gamma) / sc.bandwidthHz;
      if (cache[k].size > 100000) cache[k].clear();
      cache[k].set(gamma, v);
    }
    return v;
  };
  const gHat = (k: number, gamma: number) => {
    const v = tables[k].interp(gamma);
    return Number.isFinite(v) ? v : exactG(k, gamma);
  };
  return {
    scenario: sc,
    bound: sc.bound,
    samples,
    w,
    n,
    gammaMax: sc.gammaMax,
    tables,
    objective: (gamma) => boundObjective(sc.bound, samples, gamma),
    gHat,
    usage: (gamma) => {
      let s = 0;
      for (let k = 0; k < tables.length; k++) s += gHat(k, gamma[k]);
      return s;
    },
    exactUsage: (gamma) => {
      let s = 0;
      for (let k = 0; k < tables.length; k++) s += exactG(k, gamma[k]);
      return s;
    },
    exactG,
  };
}

/**
 * Moves γ along the segment toward `target` (componentwise ≥ γ) to the first point whose usage is ≤ 1
 * (bisection on the step; usage is decreasing along the segment). Returns undefined when `target` itself is
 * unaffordable. `usage` defaults to the table interpolation.
 */
export function pushToAffordable(
  prob: Problem,
  gamma: ArrayLike<number>,
  target: ArrayLike<number>,
  usage: (g: ArrayLike<number>) => number = prob.usage,
): number[] | undefined {
  const at = (t: number) => Array.from(gamma, (g, k) => g + t * (target[k] - g));
  if (usage(gamma) <= 1) return Array.from(gamma);
  if (!(usage(target) <= 1)) return undefined;
  let lo = 0, hi = 1;
  for (let i = 0; i < 60; i++) {
    const m = 0.5 * (lo + hi);
    if (usage(at(m)) <= 1) hi = m;
    else lo = m;
  }
  return at(hi);
}

/** Devices that cannot meet deadline or energy even at γ_max with all the bandwidth (indices). */
export function unservableDevices(sc: Scenario): number[] {
  const out: number[] = [];
  for (let k = 0; k < sc.devices.length; k++) {
    if (!Number.isFinite(minBandwidth(sc, k, sc.gammaMax))) out.push(k);
  }
  return out;
}

/** Thrown when no γ is affordable; `devices` lists those that cannot be served even alone at γ_max. */
export class InfeasibleScenarioError extends Error {
  readonly devices: number[];
  constructor(message: string, devices: number[]) {
    super(message);
    this.name = "InfeasibleScenarioError";
    this.devices = devices;
  }
}

/** Throws InfeasibleScenarioError unless γ = γ_max (the cheapest point) is affordable with the exact g_k. */
export function assertFeasible(sc: Scenario): void {
  const bad = unservableDevices(sc);
  if (bad.length > 0) {
    throw new InfeasibleScenarioError(
      `infeasible scenario: device${bad.length > 1 ? "s" : ""} ${
        bad.join(", ")
      } cannot meet the deadline or energy budget even at gamma_max = ${sc.gammaMax} with all ${sc.bandwidthHz} Hz`,
      bad,
    );
  }
  let total = 0;
  for (let k = 0; k < sc.devices.length; k++) total += minBandwidth(sc, k, sc.gammaMax);
  if (total > sc.bandwidthHz) {
    throw new InfeasibleScenarioError(
      `infeasible scenario: at gamma_max = ${sc.gammaMax} the devices together need ${
        total.toFixed(0)
      } Hz > bandwidth_hz ${sc.bandwidthHz} (each one alone can be served)`,
      [],
    );
  }
}

/**
 * A scenario drawn like the default (`drawScenarioJson`) with K devices whose bandwidth binds:
 * B_tot = Σ g_k(γ_max) + position·(Σ g_k(0.4) − Σ g_k(γ_max)), so every device is affordable at γ_max but
 * not all at the unconstrained optimum (the default scenario sits near position 0.25).
 */
export function drawBindingScenario(k: number, seed: number, position = 0.25): Scenario {
  const loose = parseScenario(drawScenarioJson(k, seed, 1e12));
  let atMax = 0, atMid = 0;
  for (let i = 0; i < k; i++) {
    atMax += minBandwidth(loose, i, loose.gammaMax);
    atMid += minBandwidth(loose, i, 0.4);
  }
  return parseScenario(drawScenarioJson(k, seed, Math.round(atMax + position * (atMid - atMax))));
}
