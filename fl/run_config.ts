/**
 * The resolved configuration of one federated run: every knob of ../shared/spec/fedlodrop.md with its default,
 * validation that names the bad field before any work starts, and merging of CLI flags and experiment files.
 * A run directory stores the resolved config, so `--resume DIR` and reruns need nothing else.
 * @module
 */
import { parseSplit } from "./split.ts";

/** Everything a run needs. JSON-serialisable. */
export interface RunConfig {
  /** Free-form name of the run (used for the default output folder). */
  name: string;
  /** GLUE task key (`sst2`, `cola`, `mrpc`, `stsb`, `qnli`, `rte`, `qqp`, `mnli`, `wnli`). */
  task: string;
  /** Folder in the GLUE layout (`<TASK>/{train,dev}.tsv`); null = the committed samples in `data/glue`. */
  data: string | null;
  /** Hugging Face model folder (config.json, model.safetensors, tokenizer files); null = make `preset` from the seed. */
  model: string | null;
  /** Random model preset used when `model` is null. */
  preset: "tiny" | "base" | "large";
  /** Number of simulated devices K. */
  devices: number;
  /** Communication rounds. */
  rounds: number;
  /** Local epochs per round (when `localSteps` is null). */
  localEpochs: number;
  /**
   * Optimiser steps per round instead of `localEpochs` full passes: each round a device takes this many batches
   * from fresh shuffles of its data, pass after pass as needed (null = full passes).
   */
  localSteps: number | null;
  /** Batch examples of similar length together within a round (less padding; Hugging Face's `group_by_length`). */
  groupByLength: boolean;
  /** Local batch size. */
  batch: number;
  /** Evaluation batch size. */
  evalBatch: number;
  /** Peak learning rate (linear warm-up then linear decay to 0 within each round). */
  lr: number;
  /** Fraction of each round's steps spent warming up. */
  warmupRatio: number;
  /** AdamW weight decay. */
  weightDecay: number;
  /** LoRA rank r. */
  rank: number;
  /** LoRA alpha (scale alpha/r, or alpha/sqrt(r) with rsLoRA). */
  alpha: number;
  /** rsLoRA scaling. */
  rslora: boolean;
  /** Adapted modules of every layer. */
  targets: string[];
  /** peft lora_dropout on the LoRA branch input. */
  loraDropout: number;
  /** FedLoDrop rate: one value for every device, or one per device. */
  gamma: number | number[];
  /** Optional per-round rates: `gammaRounds[t][k]` overrides `gamma` in round t (missing rounds use `gamma`). */
  gammaRounds: number[][] | null;
  /** Mask sampling. */
  mask: "bernoulli" | "fixed";
  /** Local training mode: `subadapter` (dropped entries frozen) or `reset` (reference code: zeroed, then all trained). */
  mode: "subadapter" | "reset";
  /** Server aggregation. */
  aggregator: "fedavg" | "fedex" | "ffa";
  /** Averaging of entries some devices dropped. */
  normalisation: "keepers" | "all";
  /** Data split: `iid`, `dirichlet:ALPHA` or `sizes:N1,N2,…`. */
  split: string;
  /** Fraction of devices taking part in each round (at least one). */
  participation: number;
  /** Seed of every random choice. */
  seed: number;
  /** Maximum tokens per example (truncation longest-first). */
  maxLength: number;
  /** Use at most this many training examples (null = all). */
  maxTrain: number | null;
  /** Evaluate on at most this many dev examples (null = all). */
  maxDev: number | null;
  /** Size of the fixed training subsample on which the train metric is measured each round. */
  trainEvalSize: number;
  /** Resource plan from `deno task optimize` (γ per device, simulated latency and energy); null = none. */
  plan: string | null;
  /** Output folder (null = `runs/<name>`). */
  out: string | null;
  /** Profile the kernels of the first local steps (writes `<out>/profile/`). */
  profile: boolean;
  /**
   * FedEx: `write` the merged base model (frozen weights plus the merged residuals, Hugging Face layout) to
   * `<out>/adapter/merged_base`, which the exported adapter needs; `skip` it (sweeps: a full model per run).
   */
  mergedModel: "write" | "skip";
}

/** Defaults: the reference code's local-training settings, on a tiny random model and the committed SST-2 sample. */
export const DEFAULT_RUN: Readonly<RunConfig> = {
  name: "default",
  task: "sst2",
  data: null,
  model: null,
  preset: "tiny",
  devices: 3,
  rounds: 5,
  localEpochs: 3,
  localSteps: null,
  groupByLength: false,
  batch: 64,
  evalBatch: 64,
  lr: 1e-3,
  warmupRatio: 0.06,
  weightDecay: 0.01,
  rank: 4,
  alpha: 8,
  rslora: false,
  targets: ["query", "value"],
  loraDropout: 0.1,
  gamma: 0.3,
  gammaRounds: null,
  mask: "bernoulli",
  mode: "subadapter",
  aggregator: "fedex",
  normalisation: "keepers",
  split: "iid",
  participation: 1,
  seed: 0,
  maxLength: 128,
  maxTrain: null,
  maxDev: null,
  trainEvalSize: 256,
  plan: null,
  out: null,
  profile: false,
  mergedModel: "write",
};

/** One-line help per field (for `--help`). */
export const RUN_HELP: Record<keyof RunConfig, string> = {
  name: "run name (default output folder runs/<name>)",
  task: "GLUE task: sst2 cola mrpc stsb qnli rte qqp mnli wnli",
  data: "GLUE folder with <TASK>/{train,dev}.tsv (default: committed samples in data/glue)",
  model:
    "Hugging Face model folder (config.json, model.safetensors, tokenizer files: vocab.json+merges.txt or vocab.txt)",
  preset: "random model made from the seed when --model is not given: tiny|base|large",
  devices: "number of simulated devices K",
  rounds: "communication rounds",
  localEpochs: "local epochs per round",
  localSteps: "optimiser steps per round instead of full local epochs (drawn from fresh shuffles)",
  groupByLength: "batch training examples of similar length together (less padding)",
  batch: "local batch size",
  evalBatch: "evaluation batch size",
  lr: "peak learning rate (6% warm-up, linear decay per round)",
  warmupRatio: "fraction of a round's steps used for warm-up",
  weightDecay: "AdamW weight decay",
  rank: "LoRA rank r",
  alpha: "LoRA alpha",
  rslora: "rsLoRA scaling alpha/sqrt(r)",
  targets:
    "comma-separated LoRA targets: query,key,value,attention.output.dense,intermediate.dense,output.dense",
  loraDropout: "peft lora_dropout",
  gamma: "FedLoDrop rate γ: one value or one per device (comma-separated)",
  gammaRounds: "per-round rates (experiment files only): [[γ per device] per round]",
  mask: "mask sampling: bernoulli|fixed",
  mode: "local training mode: subadapter|reset",
  aggregator: "server aggregation: fedex|fedavg|ffa",
  normalisation: "averaging of dropped entries: keepers|all",
  split: "data split: iid | dirichlet:ALPHA | sizes:N1,N2,...",
  participation: "fraction of devices per round (0, 1]",
  seed: "seed of every random choice",
  maxLength: "maximum tokens per example",
  maxTrain: "use at most this many training examples",
  maxDev: "evaluate on at most this many dev examples",
  trainEvalSize: "training examples on which the train metric is measured",
  plan: "resource plan JSON from `deno task optimize --out`",
  out: "output folder (default runs/<name>)",
  profile:
    "profile the kernels of the first 3 local steps into <out>/profile (GPU timestamps; serialized wall-clock where the adapter has no timestamp-query)",
  mergedModel:
    "FedEx: write|skip the merged base model (frozen weights + residuals) in <out>/adapter/merged_base (a full model per run)",
};

const TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"];

function fail(field: string, msg: string): never {
  throw new Error(`config field "${field}": ${msg}`);
}

function posInt(c: RunConfig, f: keyof RunConfig): void {
  const v = c[f];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    fail(f, `expected a positive integer, got ${JSON.stringify(v)}`);
  }
}

function inRange(c: RunConfig, f: keyof RunConfig, lo: number, hi: number, loOpen = false): void {
  const v = c[f];
  if (typeof v !== "number" || !Number.isFinite(v) || v > hi || (loOpen ? v <= lo : v < lo)) {
    fail(f, `expected a number in ${loOpen ? "(" : "["}${lo}, ${hi}], got ${JSON.stringify(v)}`);
  }
}

function checkGamma(g: unknown, field: string, devices: number): void {
  const ok = (x: unknown) => typeof x === "number" && x >= 0 && x < 1;
  if (Array.isArray(g)) {
    if (g.length !== devices) fail(field, `has ${g.length} values, expected one per device (${devices})`);
    g.forEach((x, i) =>
      ok(x) || fail(field, `value ${i} is ${JSON.stringify(x)}, expected a rate in [0, 1)`)
    );
  } else if (!ok(g)) fail(field, `expected a rate in [0, 1) or one per device, got ${JSON.stringify(g)}`);
}

/**
 * Fills defaults and validates every field; unknown fields are errors (they are usually typos).
 *
 * @example
 * ```ts
 * const cfg = resolveRunConfig({ task: "rte", gamma: [0.1, 0.3, 0.5] });
 * ```
 */
export function resolveRunConfig(partial: Partial<RunConfig> & Record<string, unknown>): RunConfig {
  for (const k of Object.keys(partial)) {
    if (!(k in DEFAULT_RUN)) fail(k, `unknown field (known: ${Object.keys(DEFAULT_RUN).join(", ")})`);
  }
  const c = { ...DEFAULT_RUN, ...partial } as RunConfig;
  if (typeof c.name !== "string" || !/^[\w.=,-]+$/.test(c.name)) {
    fail("name", "use letters, digits and . _ - = ,");
  }
  if (typeof c.task !== "string") fail("task", "expected a task name");
  if (!["tiny", "base", "large"].includes(c.preset)) {
    fail("preset", `expected tiny, base or large, got ${c.preset}`);
  }
  for (
    const f of [
      "devices",
      "rounds",
      "localEpochs",
      "batch",
      "evalBatch",
      "rank",
      "maxLength",
      "trainEvalSize",
    ] as const
  ) {
    posInt(c, f);
  }
  if (c.maxLength < 4) fail("maxLength", "must be at least 4 (room for the special tokens)");
  inRange(c, "lr", 0, 10, true);
  inRange(c, "warmupRatio", 0, 1);
  inRange(c, "weightDecay", 0, 10);
  inRange(c, "alpha", 0, 1e6, true);
  inRange(c, "loraDropout", 0, 0.99);
  inRange(c, "participation", 0, 1, true);
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff) {
    fail("seed", "expected an integer in [0, 2^32)");
  }
  if (!Array.isArray(c.targets) || c.targets.length === 0) fail("targets", "name at least one module");
  for (const t of c.targets) {
    if (!TARGETS.includes(t)) fail("targets", `unknown target ${t} (known: ${TARGETS.join(", ")})`);
  }
  if (new Set(c.targets).size !== c.targets.length) fail("targets", "lists a module twice");
  checkGamma(c.gamma, "gamma", c.devices);
  if (c.gammaRounds !== null) {
    if (!Array.isArray(c.gammaRounds)) fail("gammaRounds", "expected an array of per-device arrays");
    c.gammaRounds.forEach((g, t) => checkGamma(g, `gammaRounds[${t}]`, c.devices));
  }
  if (!["bernoulli", "fixed"].includes(c.mask)) fail("mask", `expected bernoulli or fixed, got ${c.mask}`);
  if (!["subadapter", "reset"].includes(c.mode)) fail("mode", `expected subadapter or reset, got ${c.mode}`);
  if (!["write", "skip"].includes(c.mergedModel)) {
    fail("mergedModel", `expected write or skip, got ${JSON.stringify(c.mergedModel)}`);
  }
  if (!["fedavg", "fedex", "ffa"].includes(c.aggregator)) {
    fail("aggregator", `expected fedex, fedavg or ffa, got ${c.aggregator}`);
  }
  if (!["keepers", "all"].includes(c.normalisation)) {
    fail("normalisation", `expected keepers or all, got ${c.normalisation}`);
  }
  try {
    const s = parseSplit(c.split);
    if (typeof s === "object" && "sizes" in s && s.sizes.length !== c.devices) {
      fail("split", `gives ${s.sizes.length} sizes for ${c.devices} devices`);
    }
  } catch (e) {
    fail("split", (e as Error).message);
  }
  if (typeof c.groupByLength !== "boolean") {
    fail("groupByLength", `expected true or false, got ${JSON.stringify(c.groupByLength)}`);
  }
  for (const f of ["maxTrain", "maxDev", "localSteps"] as const) {
    if (c[f] !== null && !(Number.isInteger(c[f]) && (c[f] as number) >= 1)) {
      fail(f, "expected a positive integer or null");
    }
  }
  return c;
}

/** γ of every device in round `t`. */
export function gammasForRound(c: RunConfig, t: number): number[] {
  const g = c.gammaRounds?.[t] ?? c.gamma;
  return Array.isArray(g) ? [...g] : Array(c.devices).fill(g);
}
