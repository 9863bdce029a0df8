/**
 * Per-round cost model of a device (FDMA upload/download, DVFS compute energy) and the least bandwidth
 * g_k(γ_k) with which a device meets its deadline and energy budget. For a fixed bandwidth B the device
 * spends the deadline left after downloading on computing (time t_c, clock W/t_c) and uploading (time t_u,
 * the least power that sends Q bits in t_u); its energy κW³/t_c² + t_u·p(t_u) + ξ is convex in the split,
 * minimised by bisection on its derivative. g_k is then found by bisection on B (feasibility is monotone).
 *
 * @example
 * ```ts
 * const g = minBandwidth(sc, 0, 0.4); // Hz, Infinity when even B_tot cannot serve device 0
 * const alloc = allocate(sc, 0, 0.4, g * 1.01);
 * ```
 * @module
 */
import type { Scenario } from "./scenario.ts";

/** Expected payload Q(γ) = b·((1 − γ)·P_lora + P_head) in bits. */
export function payloadBits(sc: Scenario, gamma: number): number {
  return sc.bitsPerValue * ((1 - gamma) * sc.adapterParams + sc.headParams);
}

/** Shannon rate B·log2(1 + p·h/(N0·B)) in bit/s (0 when B = 0). */
export function rateBps(bandwidthHz: number, powerW: number, gain: number, noiseWPerHz: number): number {
  if (!(bandwidthHz > 0)) return 0;
  return bandwidthHz * Math.log2(1 + powerW * gain / (noiseWPerHz * bandwidthHz));
}

/** Compute cycles per round W_k = E_loc·c_k·N_k. */
export function roundCycles(sc: Scenario, k: number): number {
  const d = sc.devices[k];
  return sc.localEpochs * d.cyclesPerSample * d.samples;
}

/** Resources and costs of one device for one round. */
export interface DeviceAllocation {
  gamma: number;
  bandwidthHz: number;
  powerW: number;
  freqHz: number;
  downloadS: number;
  computeS: number;
  uploadS: number;
  latencyS: number;
  energyJ: number;
  /** Expected payload per direction (bits). */
  payloadBits: number;
}

/** Result of the inner minimisation: the least-energy split at a given bandwidth, or why there is none. */
export type SplitResult =
  | { ok: true; alloc: DeviceAllocation }
  | { ok: false; reason: string };

/**
 * The least-energy way for device k to finish a round at dropout rate `gamma` with bandwidth `bandwidthHz`
 * within the deadline (ignores the energy budget; compare `alloc.energyJ` with it).
 */
export function leastEnergySplit(sc: Scenario, k: number, gamma: number, bandwidthHz: number): SplitResult {
  const d = sc.devices[k];
  const q = payloadBits(sc, gamma);
  const n0 = sc.noiseWPerHz;
  const rDl = rateBps(bandwidthHz, sc.serverPowerW, d.gain, n0);
  const rUpMax = rateBps(bandwidthHz, d.pmaxW, d.gain, n0);
  if (!(rDl > 0) || !(rUpMax > 0)) return { ok: false, reason: "no bandwidth" };
  const tDl = q / rDl;
  const w = roundCycles(sc, k);
  const tRest = sc.deadlineS - tDl;
  const tuLo = q / rUpMax;
  const tuHi = tRest - w / d.fmaxHz;
  if (!(tuLo <= tuHi)) return { ok: false, reason: "deadline" };
  // upload energy at time t: t·(N0B/h)(2^{c/t} − 1) with c = Q/B; compute energy κW³/(tRest − t)²
  const a = n0 * bandwidthHz / d.gain;
  const c = q / bandwidthHz;
  const kw3 = d.kappa * w * w * w;
  const deriv = (t: number) => {
    const e = Math.pow(2, c / t);
    return 2 * kw3 / Math.pow(tRest - t, 3) + a * (e - 1) - a * (c / t) * Math.LN2 * e;
  };
  let tu: number;
  if (deriv(tuLo) >= 0) tu = tuLo;
  else if (tuHi - tuLo <= 0 || deriv(tuHi) <= 0) tu = tuHi;
  else {
    let lo = tuLo, hi = tuHi;
    for (let i = 0; i < 100 && hi - lo > 1e-13 * hi; i++) {
      const m = 0.5 * (lo + hi);
      if (deriv(m) < 0) lo = m;
      else hi = m;
    }
    tu = 0.5 * (lo + hi);
  }
  const tc = tRest - tu;
  const f = Math.min(w / tc, d.fmaxHz);
  const p = Math.min(a * (Math.pow(2, c / tu) - 1), d.pmaxW);
  const uploadS = q / rateBps(bandwidthHz, p, d.gain, n0);
  const computeS = w / f;
  const energyJ = d.kappa * w * f * f + p * uploadS + d.fixedEnergyJ;
  return {
    ok: true,
    alloc: {
      gamma,
      bandwidthHz,
      powerW: p,
      freqHz: f,
      downloadS: tDl,
      computeS,
      uploadS,
      latencyS: tDl + computeS + uploadS,
      energyJ,
      payloadBits: q,
    },
  };
}

/** True when device k meets deadline and energy budget at `gamma` with `bandwidthHz`. */
export function feasibleAt(sc: Scenario, k: number, gamma: number, bandwidthHz: number): boolean {
  const r = leastEnergySplit(sc, k, gamma, bandwidthHz);
  return r.ok && r.alloc.energyJ <= sc.devices[k].energyBudgetJ;
}

/** Relative precision of g_k (bisection stops when the bracket is below this fraction of B_tot). */
export const BANDWIDTH_REL_TOL = 1e-11;

/**
 * g_k(γ): the least bandwidth (Hz) with which device k meets its deadline and energy budget, by bisection
 * on B ∈ (0, B_tot]; Infinity when B_tot itself is not enough. The returned value is on the feasible side
 * and at most BANDWIDTH_REL_TOL·B_tot above the exact one.
 */
export function minBandwidth(sc: Scenario, k: number, gamma: number): number {
  const bTot = sc.bandwidthHz;
  if (!feasibleAt(sc, k, gamma, bTot)) return Infinity;
  let lo = 0, hi = bTot;
  while (hi - lo > BANDWIDTH_REL_TOL * bTot) {
    const m = 0.5 * (lo + hi);
    if (feasibleAt(sc, k, gamma, m)) hi = m;
    else lo = m;
  }
  return hi;
}

/** The least-energy allocation of device k at `gamma` with bandwidth `bandwidthHz` (throws if impossible). */
export function allocate(sc: Scenario, k: number, gamma: number, bandwidthHz: number): DeviceAllocation {
  const r = leastEnergySplit(sc, k, gamma, bandwidthHz);
  if (!r.ok) {
    throw new Error(`device ${k}: cannot meet the deadline at gamma ${gamma} with ${bandwidthHz} Hz`);
  }
  return r.alloc;
}

/**
 * g_k tabulated on a uniform grid over [0, γ_max], in units of B_tot (so the bandwidth constraint reads
 * Σ ĝ_k ≤ 1). Provides the valid lower bound at a box corner, a conservative interpolation, and tangent-like
 * cuts valid when the table is convex.
 */
export class BandwidthTable {
  /** Grid points. */
  readonly x: Float64Array;
  /** ĝ at the grid points (Infinity where unaffordable). */
  readonly g: Float64Array;
  /** Grid spacing. */
  readonly step: number;
  /** Index of the first finite entry (x.length when none). */
  readonly firstFinite: number;
  /** True when the finite part of the table has non-decreasing slopes (up to bisection noise). */
  readonly convex: boolean;
  /** Absolute tolerance of the entries (units of B_tot). */
  readonly tol: number;

  constructor(x: Float64Array, g: Float64Array, tol = 2 * BANDWIDTH_REL_TOL) {
    this.x = x;
    this.g = g;
    this.tol = tol;
    this.step = x[1] - x[0];
    let f = 0;
    while (f < g.length && !Number.isFinite(g[f])) f++;
    this.firstFinite = f;
    let convex = true;
    for (let i = f + 1; i + 1 < g.length; i++) {
      const m0 = (g[i] - g[i - 1]) / this.step, m1 = (g[i + 1] - g[i]) / this.step;
      if (m1 < m0 - 4 * tol / this.step) convex = false;
    }
    this.convex = convex;
  }

  /**
   * A line ĝ ≥ gu + slope·(γ − u) valid for γ ≤ u when ĝ is convex, through the exact value gu = ĝ(u):
   * its slope is the forward secant to a grid point at least half a step above u (≥ the left derivative at
   * u), lowered by the error the entries' tolerance can cause. Undefined when no such grid point exists.
   */
  cutAt(u: number, gu: number, boxLow: number): { slope: number; intercept: number } | undefined {
    if (!this.convex || !Number.isFinite(gu)) return undefined;
    const j = Math.ceil((u + 0.5 * this.step) / this.step - 1e-9);
    if (j >= this.x.length || !Number.isFinite(this.g[j])) return undefined;
    const h = this.x[j] - u;
    if (!(h > 0)) return undefined;
    const slope = (this.g[j] - gu) / h;
    const err = this.tol + 2 * this.tol * (u - boxLow) / h;
    return { slope, intercept: gu - slope * u - err };
  }

  /** Tabulates ĝ_k = g_k/B_tot at `points` grid points over [0, γ_max]. */
  static build(sc: Scenario, k: number, points = 901): BandwidthTable {
    const x = new Float64Array(points), g = new Float64Array(points);
    for (let i = 0; i < points; i++) {
      x[i] = i === points - 1 ? sc.gammaMax : sc.gammaMax * i / (points - 1);
      g[i] = minBandwidth(sc, k, x[i]) / sc.bandwidthHz;
    }
    return new BandwidthTable(x, g);
  }

  /** Smallest γ with a finite entry (Infinity when the device is never affordable). */
  get minGamma(): number {
    return this.firstFinite < this.x.length ? this.x[this.firstFinite] : Infinity;
  }

  /** A value ≤ ĝ(u): the entry at the first grid point ≥ u (ĝ is decreasing). */
  lowerAt(u: number): number {
    const i = Math.min(this.x.length - 1, Math.ceil(u / this.step - 1e-9));
    return Math.max(0, this.g[i] - this.tol);
  }

  /** Linear interpolation of the table (≥ ĝ when ĝ is convex; Infinity next to unaffordable points). */
  interp(gamma: number): number {
    const n = this.x.length;
    if (gamma >= this.x[n - 1]) return this.g[n - 1];
    const t = Math.max(0, gamma / this.step);
    const i = Math.min(n - 2, Math.floor(t));
    const a = this.g[i], b = this.g[i + 1];
    if (!Number.isFinite(a) || !Number.isFinite(b)) return gamma === this.x[i + 1] ? b : Infinity;
    const f = Math.min(1, t - i);
    return a + (b - a) * f;
  }

  /** Slope of the interpolation at γ (right slope; 0 at the end, −Infinity where undefined). */
  slope(gamma: number): number {
    const n = this.x.length;
    const i = Math.min(n - 2, Math.max(0, Math.floor(gamma / this.step)));
    const a = this.g[i], b = this.g[i + 1];
    if (!Number.isFinite(a) || !Number.isFinite(b)) return -Infinity;
    return (b - a) / this.step;
  }

  /**
   * A line ĝ ≥ intercept + slope·γ valid on all of [0, γ_max] when the table is convex: the secant of the
   * grid segment nearest γ, lowered by the most a convex function can dip below it inside that segment.
   * Returns undefined where no finite segment exists or the table is not convex.
   */
  cut(gamma: number): { slope: number; intercept: number } | undefined {
    if (!this.convex) return undefined;
    const n = this.x.length;
    let i = Math.min(n - 2, Math.max(0, Math.floor(gamma / this.step)));
    if (i < this.firstFinite) i = this.firstFinite;
    if (i > n - 2) return undefined;
    const g = this.g, h = this.step;
    const m = (g[i + 1] - g[i]) / h;
    const hasL = i - 1 >= this.firstFinite, hasR = i + 2 < n;
    const mL = hasL ? (g[i] - g[i - 1]) / h : undefined;
    const mR = hasR ? (g[i + 2] - g[i + 1]) / h : undefined;
    let dip: number;
    if (mL !== undefined && mR !== undefined) dip = h * Math.max(0, mR - mL) / 4;
    else if (mR !== undefined) dip = h * Math.max(0, mR - m);
    else if (mL !== undefined) dip = h * Math.max(0, m - mL);
    else dip = 0;
    return { slope: m, intercept: g[i] - m * this.x[i] - dip - 2 * this.tol };
  }
}

/** Tables for every device of a scenario. */
export function buildTables(sc: Scenario, points = 901): BandwidthTable[] {
  return sc.devices.map((_, k) => BandwidthTable.build(sc, k, points));
}
