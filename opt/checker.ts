/**
 * Independent plan checker: recomputes every device's rates, times and energy from the plan's resources
 * (γ_k, B_k, p_k, f_k) with its own copy of the formulas (it does not call the solver's system model) and
 * lists every violated constraint and every reported number that disagrees with the recomputation.
 *
 * @example
 * ```ts
 * const problems = checkAllocation(sc, plan.devices);
 * if (problems.length) throw new Error(problems.join("\n"));
 * ```
 * @module
 */
import type { Scenario } from "./scenario.ts";

/** What the checker needs of each device's plan entry. */
export interface PlannedDevice {
  gamma: number;
  bandwidth_hz: number;
  power_w: number;
  freq_hz: number;
  /** Reported latency (s), compared with the recomputation. */
  latency_s?: number;
  /** Reported energy (J), compared with the recomputation. */
  energy_j?: number;
}

/** Recomputed cost of one device. */
export interface CheckedCost {
  latencyS: number;
  energyJ: number;
}

/** Recomputes latency and energy of device k from its planned resources. */
export function recomputeCost(sc: Scenario, k: number, d: PlannedDevice): CheckedCost {
  const dev = sc.devices[k];
  const bits = sc.bitsPerValue * ((1 - d.gamma) * sc.adapterParams + sc.headParams);
  const snr = (p: number) => p * dev.gain / (sc.noiseWPerHz * d.bandwidth_hz);
  const up = d.bandwidth_hz * Math.log(1 + snr(d.power_w)) / Math.LN2;
  const down = d.bandwidth_hz * Math.log(1 + snr(sc.serverPowerW)) / Math.LN2;
  const cycles = sc.localEpochs * dev.cyclesPerSample * dev.samples;
  const upload = bits / up;
  const latencyS = bits / down + cycles / d.freq_hz + upload;
  const energyJ = dev.kappa * cycles * d.freq_hz * d.freq_hz + d.power_w * upload + dev.fixedEnergyJ;
  return { latencyS, energyJ };
}

/**
 * Checks a plan against the scenario's constraints; returns human-readable violations (empty when valid).
 * `relTol` is the relative slack allowed on the deadline, energy, power, clock and bandwidth limits.
 */
export function checkAllocation(sc: Scenario, devices: PlannedDevice[], relTol = 1e-6): string[] {
  const out: string[] = [];
  if (devices.length !== sc.devices.length) {
    return [`plan has ${devices.length} devices, scenario has ${sc.devices.length}`];
  }
  let total = 0;
  devices.forEach((d, k) => {
    const dev = sc.devices[k];
    const name = `device ${k}`;
    for (const f of ["gamma", "bandwidth_hz", "power_w", "freq_hz"] as const) {
      if (typeof d[f] !== "number" || !Number.isFinite(d[f])) {
        out.push(`${name}: ${f} is not a finite number (${d[f]})`);
      }
    }
    if (out.length > 0 && out[out.length - 1].startsWith(name)) return;
    if (!(d.gamma >= 0 && d.gamma <= sc.gammaMax)) {
      out.push(`${name}: gamma ${d.gamma} outside [0, ${sc.gammaMax}]`);
    }
    if (!(d.bandwidth_hz > 0)) out.push(`${name}: bandwidth ${d.bandwidth_hz} Hz is not positive`);
    if (!(d.power_w > 0)) out.push(`${name}: power ${d.power_w} W is not positive`);
    if (d.power_w > dev.pmaxW * (1 + relTol)) out.push(`${name}: power ${d.power_w} W > pmax ${dev.pmaxW} W`);
    if (!(d.freq_hz > 0)) out.push(`${name}: clock ${d.freq_hz} Hz is not positive`);
    if (d.freq_hz > dev.fmaxHz * (1 + relTol)) {
      out.push(`${name}: clock ${d.freq_hz} Hz > fmax ${dev.fmaxHz} Hz`);
    }
    total += d.bandwidth_hz;
    if (!(d.bandwidth_hz > 0 && d.power_w > 0 && d.freq_hz > 0)) return;
    const c = recomputeCost(sc, k, d);
    if (!(c.latencyS <= sc.deadlineS * (1 + relTol))) {
      out.push(`${name}: latency ${c.latencyS.toFixed(3)} s > deadline ${sc.deadlineS} s`);
    }
    if (!(c.energyJ <= dev.energyBudgetJ * (1 + relTol))) {
      out.push(`${name}: energy ${c.energyJ.toFixed(3)} J > budget ${dev.energyBudgetJ} J`);
    }
    if (d.latency_s !== undefined && !(Math.abs(d.latency_s - c.latencyS) <= 1e-6 * c.latencyS + 1e-9)) {
      out.push(`${name}: reported latency ${d.latency_s} s differs from recomputed ${c.latencyS} s`);
    }
    if (d.energy_j !== undefined && !(Math.abs(d.energy_j - c.energyJ) <= 1e-6 * c.energyJ + 1e-9)) {
      out.push(`${name}: reported energy ${d.energy_j} J differs from recomputed ${c.energyJ} J`);
    }
  });
  if (!(total <= sc.bandwidthHz * (1 + relTol))) {
    out.push(`bandwidth: devices use ${total.toFixed(1)} Hz > bandwidth_hz ${sc.bandwidthHz} Hz`);
  }
  return out;
}
