/**
 * Scenario files for the dropout-rate and resource optimiser: parsing with field-naming validation, the
 * LoRA/head sizes derived from a Hugging Face model config, path-loss channel gains, and seeded drawing of
 * scenarios "like the default" (for the default file and the benchmark).
 *
 * @example
 * ```ts
 * const sc = await loadScenario("opt/scenarios/default.json");
 * console.log(sc.devices.length, sc.adapterParams); // 10 786432
 * ```
 * @module
 */
import { dirname, isAbsolute, join } from "node:path";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import type { BoundConstants } from "./bound.ts";

/** One edge device, in SI units, after validation (gain already resolved from distance/fading). */
export interface DeviceParams {
  /** Training samples N_k. */
  samples: number;
  /** Channel power gain h_k (linear). */
  gain: number;
  /** Maximum transmit power p_k^max (W). */
  pmaxW: number;
  /** Maximum CPU/GPU clock f_k^max (Hz). */
  fmaxHz: number;
  /** Cycles per training sample c_k. */
  cyclesPerSample: number;
  /** Effective switched capacitance κ_k. */
  kappa: number;
  /** Energy budget per round E_k^max (J). */
  energyBudgetJ: number;
  /** Fixed energy per round ξ_k (J). */
  fixedEnergyJ: number;
  /** Distance to the access point if it was given (m). */
  distanceM?: number;
}

/** A validated scenario: everything the system model, the bound and the solvers need. */
export interface Scenario {
  seed: number;
  /** Total bandwidth B_tot (Hz). */
  bandwidthHz: number;
  /** Noise density N0 in dBm/Hz as written in the file. */
  noiseDbmPerHz: number;
  /** Noise density N0 (W/Hz). */
  noiseWPerHz: number;
  /** Round deadline T_max (s). */
  deadlineS: number;
  /** Server transmit power P_s (W). */
  serverPowerW: number;
  /** Local epochs E_loc. */
  localEpochs: number;
  /** Bits per value b. */
  bitsPerValue: number;
  /** Largest dropout rate γ_max. */
  gammaMax: number;
  /** LoRA adapter size P_lora (values). */
  adapterParams: number;
  /** Classification head size P_head (values). */
  headParams: number;
  /** Constants of the generalisation bound. */
  bound: BoundConstants;
  devices: DeviceParams[];
}

/** LoRA settings used to derive the adapter size from a model config. */
export interface LoraSizeInput {
  hiddenSize: number;
  numLayers: number;
  intermediateSize: number;
  loraRank: number;
  /** Module names among query, key, value, attention.output.dense, intermediate.dense, output.dense. */
  targets: string[];
  numLabels: number;
}

/**
 * P_lora = Σ_u r(n1_u + n2_u) over layers × targets and P_head = H·H + H + H·labels + labels
 * (RoBERTa classification head: dense H×H with bias, out_proj H×labels with bias).
 *
 * @example
 * ```ts
 * loraSizes({ hiddenSize: 1024, numLayers: 24, intermediateSize: 4096, loraRank: 8,
 *   targets: ["query", "value"], numLabels: 2 }); // { adapterParams: 786432, headParams: 1051650 }
 * ```
 */
export function loraSizes(x: LoraSizeInput): { adapterParams: number; headParams: number } {
  const H = x.hiddenSize, I = x.intermediateSize;
  const dims: Record<string, [number, number]> = {
    "query": [H, H],
    "key": [H, H],
    "value": [H, H],
    "attention.output.dense": [H, H],
    "intermediate.dense": [I, H],
    "output.dense": [H, I],
  };
  let perLayer = 0;
  for (const t of x.targets) {
    const d = dims[t];
    if (!d) {
      throw new Error(
        `model.targets: unknown LoRA target "${t}" (expected one of ${Object.keys(dims).join(", ")})`,
      );
    }
    perLayer += x.loraRank * (d[0] + d[1]);
  }
  return {
    adapterParams: perLayer * x.numLayers,
    headParams: H * H + H + H * x.numLabels + x.numLabels,
  };
}

/** Path loss 128.1 + 37.6·log10(d/1000) dB turned into a linear channel power gain. */
export function gainFromDistance(distanceM: number): number {
  const pl = 128.1 + 37.6 * Math.log10(distanceM / 1000);
  return Math.pow(10, -pl / 10);
}

/** dBm/Hz to W/Hz. */
export function dbmToWatts(dbm: number): number {
  return Math.pow(10, (dbm - 30) / 10);
}

type Json = Record<string, unknown>;

function num(
  obj: Json,
  key: string,
  where: string,
  check: "pos" | "nonneg" | "any" | "int+" = "pos",
): number {
  const v = obj[key];
  const name = where ? `${where}.${key}` : key;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new Error(
      `${name}: expected a ${check === "any" ? "finite" : "positive"} number, got ${JSON.stringify(v)}`,
    );
  }
  if (check === "pos" && !(v > 0)) throw new Error(`${name}: expected a positive number, got ${v}`);
  if (check === "nonneg" && !(v >= 0)) throw new Error(`${name}: expected a non-negative number, got ${v}`);
  if (check === "int+" && !(Number.isInteger(v) && v > 0)) {
    throw new Error(`${name}: expected a positive integer, got ${v}`);
  }
  return v;
}

function optNum(
  obj: Json,
  key: string,
  where: string,
  dflt: number,
  check: "pos" | "nonneg" | "any" | "int+",
): number {
  return obj[key] === undefined ? dflt : num(obj, key, where, check);
}

/**
 * Validates a parsed scenario JSON. `baseDir` resolves `model.config` (a relative path is relative to the
 * scenario file); `readText` reads that config (injectable for tests). Errors name the offending field.
 */
export function parseScenario(raw: unknown, baseDir = ".", readText = Deno.readTextFileSync): Scenario {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error(`scenario: expected a JSON object, got ${Array.isArray(raw) ? "an array" : typeof raw}`);
  }
  const o = raw as Json;
  const seed = optNum(o, "seed", "", 0, "any");
  if (!Number.isInteger(seed) || seed < 0) {
    throw new Error(`seed: expected a non-negative integer, got ${seed}`);
  }
  const gammaMax = optNum(o, "gamma_max", "", 0.9, "pos");
  if (!(gammaMax < 1)) throw new Error(`gamma_max: expected a number in (0, 1), got ${gammaMax}`);
  const noiseDbm = optNum(o, "noise_dbm_per_hz", "", -174, "any");

  let adapterParams: number, headParams: number;
  if (o.model !== undefined) {
    if (o.adapter_params !== undefined || o.head_params !== undefined) {
      throw new Error("model: give either model or adapter_params/head_params, not both");
    }
    if (typeof o.model !== "object" || o.model === null) throw new Error("model: expected an object");
    const m = o.model as Json;
    if (typeof m.config !== "string") {
      throw new Error(`model.config: expected a path string, got ${m.config}`);
    }
    const path = isAbsolute(m.config) ? m.config : join(baseDir, m.config);
    let cfg: Json;
    try {
      cfg = JSON.parse(readText(path));
    } catch (e) {
      throw new Error(`model.config: cannot read model config ${path}: ${(e as Error).message}`);
    }
    const targets = m.targets ?? ["query", "value"];
    if (!Array.isArray(targets) || targets.some((t) => typeof t !== "string") || targets.length === 0) {
      throw new Error(
        `model.targets: expected a non-empty array of module names, got ${JSON.stringify(targets)}`,
      );
    }
    const sizes = loraSizes({
      hiddenSize: num(cfg, "hidden_size", path, "int+"),
      numLayers: num(cfg, "num_hidden_layers", path, "int+"),
      intermediateSize: num(cfg, "intermediate_size", path, "int+"),
      loraRank: optNum(m, "lora_rank", "model", 8, "int+"),
      targets: targets as string[],
      numLabels: optNum(m, "num_labels", "model", 2, "int+"),
    });
    adapterParams = sizes.adapterParams;
    headParams = sizes.headParams;
  } else {
    if (o.adapter_params === undefined) {
      throw new Error("adapter_params: missing (give model.config or adapter_params and head_params)");
    }
    adapterParams = num(o, "adapter_params", "", "int+");
    headParams = num(o, "head_params", "", "nonneg");
  }

  if (typeof o.bound !== "object" || o.bound === null) {
    throw new Error("bound: expected an object of constants");
  }
  const b = o.bound as Json;
  const bound: BoundConstants = {
    M: num(b, "M", "bound"),
    rho: num(b, "rho", "bound"),
    Lambda: num(b, "Lambda", "bound"),
    lambda: num(b, "lambda", "bound"),
    delta: num(b, "delta", "bound"),
    e0: num(b, "e0", "bound", "nonneg"),
    a1: num(b, "a1", "bound", "nonneg"),
    a2: num(b, "a2", "bound", "nonneg"),
  };
  if (!(bound.delta < 1)) throw new Error(`bound.delta: expected a number in (0, 1), got ${bound.delta}`);

  if (!Array.isArray(o.devices) || o.devices.length === 0) {
    throw new Error("devices: expected a non-empty array of device objects");
  }
  const fading = o.rayleigh_fading === true;
  if (o.rayleigh_fading !== undefined && typeof o.rayleigh_fading !== "boolean") {
    throw new Error(`rayleigh_fading: expected true or false, got ${JSON.stringify(o.rayleigh_fading)}`);
  }
  const devices = o.devices.map((d: unknown, k: number): DeviceParams => {
    const where = `devices[${k}]`;
    if (typeof d !== "object" || d === null) throw new Error(`${where}: expected an object`);
    const dj = d as Json;
    let gain: number, distanceM: number | undefined;
    if (dj.gain !== undefined && dj.distance_m !== undefined) {
      throw new Error(`${where}: give either gain or distance_m, not both`);
    }
    if (dj.gain !== undefined) gain = num(dj, "gain", where);
    else if (dj.distance_m !== undefined) {
      distanceM = num(dj, "distance_m", where);
      gain = gainFromDistance(distanceM);
    } else throw new Error(`${where}.distance_m: missing (give distance_m or gain)`);
    if (fading) {
      const r = new KeyedRandom([seed, Purpose.fading, k]);
      gain *= -Math.log(1 - r.uniform()) || 1e-12; // |h|² ~ Exp(1) for Rayleigh fading
    }
    return {
      samples: num(dj, "samples", where, "int+"),
      gain,
      pmaxW: num(dj, "pmax_w", where),
      fmaxHz: num(dj, "fmax_hz", where),
      cyclesPerSample: num(dj, "cycles_per_sample", where),
      kappa: num(dj, "kappa", where),
      energyBudgetJ: num(dj, "energy_budget_j", where),
      fixedEnergyJ: optNum(dj, "fixed_energy_j", where, 0, "nonneg"),
      distanceM,
    };
  });

  return {
    seed,
    bandwidthHz: num(o, "bandwidth_hz", ""),
    noiseDbmPerHz: noiseDbm,
    noiseWPerHz: dbmToWatts(noiseDbm),
    deadlineS: num(o, "deadline_s", ""),
    serverPowerW: num(o, "server_power_w", ""),
    localEpochs: optNum(o, "local_epochs", "", 1, "pos"),
    bitsPerValue: optNum(o, "bits_per_value", "", 32, "pos"),
    gammaMax,
    adapterParams,
    headParams,
    bound,
    devices,
  };
}

/** Reads and validates a scenario file (errors are prefixed with the file name). */
export async function loadScenario(path: string): Promise<Scenario> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`${path}: cannot read scenario JSON: ${(e as Error).message}`);
  }
  try {
    return parseScenario(raw, dirname(path));
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/** Default bound constants of this project (see opt/scenarios/README.md). */
export const DEFAULT_BOUND: BoundConstants = {
  M: 1,
  rho: 1,
  Lambda: 0.05,
  lambda: 1,
  delta: 0.05,
  e0: 0.1,
  a1: 0.15,
  a2: 0.01,
};

/** Stream word that separates scenario draws from the P-SCA random start inside `Purpose.psca`. */
const SCENARIO_STREAM = 0x5ce0;

/**
 * Draws a scenario JSON object "like the default": N_k uniform integers in [500, 1500), d_k uniform in
 * (50, 500) m, E_max uniform in (900, 1800) J, other device constants fixed, all from `seed`.
 * `bandwidthHz` defaults to 1.2 MHz (the default scenario at K = 10).
 */
export function drawScenarioJson(k: number, seed: number, bandwidthHz = 1.2e6): Json {
  const r = new KeyedRandom([seed, Purpose.psca, SCENARIO_STREAM]);
  const devices = [];
  for (let i = 0; i < k; i++) {
    const samples = 500 + r.int(1000);
    const distance = 50 + 450 * r.uniform();
    const budget = 900 + 900 * r.uniform();
    devices.push({
      samples,
      distance_m: Math.round(distance * 10) / 10,
      pmax_w: 0.2,
      fmax_hz: 1.3e9,
      cycles_per_sample: 4.5e7,
      kappa: 1.4e-26,
      energy_budget_j: Math.round(budget),
      fixed_energy_j: 5,
    });
  }
  return {
    seed,
    bandwidth_hz: bandwidthHz,
    noise_dbm_per_hz: -174,
    deadline_s: 90,
    server_power_w: 1,
    local_epochs: 1,
    bits_per_value: 32,
    gamma_max: 0.9,
    adapter_params: 786432,
    head_params: 1051650,
    bound: { ...DEFAULT_BOUND },
    devices,
  };
}
