/**
 * Plan files: the optimiser's answer (per-device γ_k and radio/compute resources, the objective and the
 * certificate) written by `deno task optimize --out PLAN.json` and read by `deno task train --plan PLAN.json`.
 *
 * @example
 * ```ts
 * const plan = await readPlan("runs/plan.json");
 * const gammas = plan.devices.map((d) => d.gamma); // dropout rate of each simulated device
 * ```
 * @module
 */
import { boundObjective } from "./bound.ts";
import { checkAllocation } from "./checker.ts";
import { writeTextAtomic } from "../fl/atomic_write.ts";
import { parseScenario, type Scenario } from "./scenario.ts";
import { leastEnergySplit, minBandwidth } from "./system_model.ts";

/** Format tag of plan files. */
export const PLAN_FORMAT = "fedlodrop-plan/1";

/** One device's entry in a plan. */
export interface PlanDevice {
  /** Dropout rate γ_k for this device's sub-adapter. */
  gamma: number;
  bandwidth_hz: number;
  power_w: number;
  freq_hz: number;
  download_s: number;
  compute_s: number;
  upload_s: number;
  latency_s: number;
  energy_j: number;
  energy_budget_j: number;
  /** Expected payload per direction (bits). */
  payload_bits: number;
  samples: number;
}

/** B&B certificate. */
export interface PlanCertificate {
  lower_bound: number;
  gap: number;
  closed: boolean;
  nodes: number;
  lps: number;
}

/** A plan file. */
export interface Plan {
  format: string;
  method: string;
  /** The scenario it was solved for, in scenario-file form (gains resolved, sizes explicit). */
  scenario: Record<string, unknown>;
  objective: { G: number; gap_term: number; emp_term: number; sbar: number };
  certificate: PlanCertificate | null;
  bandwidth_total_hz: number;
  bandwidth_used_hz: number;
  solve_time_s: number;
  devices: PlanDevice[];
}

/** The scenario in file form with every derived quantity explicit (gain, adapter/head sizes). */
export function scenarioToJson(sc: Scenario): Record<string, unknown> {
  return {
    seed: sc.seed,
    bandwidth_hz: sc.bandwidthHz,
    noise_dbm_per_hz: sc.noiseDbmPerHz,
    deadline_s: sc.deadlineS,
    server_power_w: sc.serverPowerW,
    local_epochs: sc.localEpochs,
    bits_per_value: sc.bitsPerValue,
    gamma_max: sc.gammaMax,
    adapter_params: sc.adapterParams,
    head_params: sc.headParams,
    bound: { ...sc.bound },
    devices: sc.devices.map((d) => ({
      samples: d.samples,
      gain: d.gain,
      pmax_w: d.pmaxW,
      fmax_hz: d.fmaxHz,
      cycles_per_sample: d.cyclesPerSample,
      kappa: d.kappa,
      energy_budget_j: d.energyBudgetJ,
      fixed_energy_j: d.fixedEnergyJ,
    })),
  };
}

/**
 * Turns a dropout vector into a full plan: every device gets its least bandwidth g_k(γ_k) (exact bisection)
 * plus a share of the spare bandwidth proportional to it, then its least-energy power and clock. Throws if γ
 * is not affordable; the result is verified by the independent checker before it is returned.
 */
export function buildPlan(
  sc: Scenario,
  method: string,
  gamma: number[],
  extra: { certificate?: PlanCertificate | null; solveTimeS?: number } = {},
): Plan {
  const need = gamma.map((g, k) => minBandwidth(sc, k, g));
  const total = need.reduce((a, x) => a + x, 0);
  if (!(total <= sc.bandwidthHz)) {
    throw new Error(
      `${method}: gamma needs ${total} Hz > bandwidth_hz ${sc.bandwidthHz} Hz (not affordable)`,
    );
  }
  const scale = sc.bandwidthHz / total;
  const devices = gamma.map((g, k): PlanDevice => {
    const r = leastEnergySplit(sc, k, g, need[k] * scale);
    if (!r.ok) throw new Error(`${method}: device ${k} infeasible at its bandwidth (${r.reason})`);
    const a = r.alloc;
    return {
      gamma: g,
      bandwidth_hz: a.bandwidthHz,
      power_w: a.powerW,
      freq_hz: a.freqHz,
      download_s: a.downloadS,
      compute_s: a.computeS,
      upload_s: a.uploadS,
      latency_s: a.latencyS,
      energy_j: a.energyJ,
      energy_budget_j: sc.devices[k].energyBudgetJ,
      payload_bits: a.payloadBits,
      samples: sc.devices[k].samples,
    };
  });
  const problems = checkAllocation(sc, devices);
  if (problems.length > 0) throw new Error(`${method}: plan fails the checker:\n  ${problems.join("\n  ")}`);
  const obj = boundObjective(sc.bound, sc.devices.map((d) => d.samples), gamma);
  return {
    format: PLAN_FORMAT,
    method,
    scenario: scenarioToJson(sc),
    objective: { G: obj.G, gap_term: obj.gap, emp_term: obj.emp, sbar: obj.sbar },
    certificate: extra.certificate ?? null,
    bandwidth_total_hz: sc.bandwidthHz,
    bandwidth_used_hz: devices.reduce((a, d) => a + d.bandwidth_hz, 0),
    solve_time_s: extra.solveTimeS ?? 0,
    devices,
  };
}

/** Writes a plan atomically (temp file, then rename). */
export async function writePlan(path: string, plan: Plan): Promise<void> {
  await writeTextAtomic(path, JSON.stringify(plan, null, 2) + "\n");
}

const DEVICE_FIELDS = [
  "gamma",
  "bandwidth_hz",
  "power_w",
  "freq_hz",
  "download_s",
  "compute_s",
  "upload_s",
  "latency_s",
  "energy_j",
  "energy_budget_j",
  "payload_bits",
  "samples",
] as const;

/**
 * Validates a parsed plan: format tag, scenario (re-parsed), one entry per device with finite numbers and
 * γ in [0, gamma_max]. `where` prefixes error messages (the file name).
 */
export function parsePlan(raw: unknown, where = "plan"): Plan {
  if (typeof raw !== "object" || raw === null) throw new Error(`${where}: expected a JSON object`);
  const p = raw as Record<string, unknown>;
  if (p.format !== PLAN_FORMAT) {
    throw new Error(`${where}.format: expected "${PLAN_FORMAT}", got ${JSON.stringify(p.format)}`);
  }
  if (typeof p.method !== "string") throw new Error(`${where}.method: expected a string`);
  let sc: Scenario;
  try {
    sc = parseScenario(p.scenario);
  } catch (e) {
    throw new Error(`${where}.scenario: ${(e as Error).message}`);
  }
  if (!Array.isArray(p.devices) || p.devices.length !== sc.devices.length) {
    throw new Error(
      `${where}.devices: expected an array of ${sc.devices.length} entries (one per scenario device)`,
    );
  }
  p.devices.forEach((d: Record<string, unknown>, k: number) => {
    for (const f of DEVICE_FIELDS) {
      if (typeof d?.[f] !== "number" || !Number.isFinite(d[f])) {
        throw new Error(
          `${where}.devices[${k}].${f}: expected a finite number, got ${JSON.stringify(d?.[f])}`,
        );
      }
    }
    const g = d.gamma as number;
    if (!(g >= 0 && g <= sc.gammaMax)) {
      throw new Error(`${where}.devices[${k}].gamma: expected a number in [0, ${sc.gammaMax}], got ${g}`);
    }
  });
  if (typeof p.objective !== "object" || p.objective === null) {
    throw new Error(`${where}.objective: expected an object`);
  }
  return p as unknown as Plan;
}

/** Reads and validates a plan file. */
export async function readPlan(path: string): Promise<Plan> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`${path}: cannot read plan JSON: ${(e as Error).message}`);
  }
  return parsePlan(raw, path);
}

/** The scenario a plan was solved for. */
export function planScenario(plan: Plan): Scenario {
  return parseScenario(plan.scenario);
}
