/**
 * `deno task profile [--preset tiny|base|large | --model DIR] [--batch B] [--seq L] [--steps N] [--out DIR]
 * [--mode timestamps|serial|auto] [--repeats R]`
 *
 * Runs training steps of a RoBERTa + LoRA model with the kernel profiler attached and prints, per kernel and
 * shape (copies and clears between kernels as rows `copy`, `copy-to-texture`, `clear`): calls, total and median GPU time, share of the step, FLOPs and bytes counted by the launchers,
 * achieved GFLOP/s and GB/s and their fraction of ceilings measured in the same run (a large buffer copy for
 * bandwidth, the best of a few GEMMs for compute). Times come from `timestamp-query` (`--mode timestamps`),
 * or, on adapters without it, from the serialized wall-clock fallback (`--mode serial`: each dispatch
 * replayed alone in its own command buffer, see kernels/profiler_serial.ts); `auto` (default) picks
 * timestamps when available. Every output names the timing used. The summed kernel time of each step is
 * printed next to its wall time as a sanity check. Writes `profile.csv` (table over the timed steps) and
 * `trace.json` (Chrome trace-event JSON of the last step) into `--out` (default `runs/profile/`). The first
 * step is a warm-up (pipeline compilation) and is not counted.
 * @module
 */
import { pathExists, writeTextAtomic } from "../fl/atomic_write.ts";
import { getGpu, type Gpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import { gemm } from "../kernels/gemm.ts";
import {
  type Ceilings,
  chromeTrace,
  createProfiler,
  type DispatchProfiler,
  type KernelSummary,
  resolveTimingMode,
  type StepProfiler,
  summarize,
  summaryCsv,
  summaryTable,
  type TimedDispatch,
  TIMING_LABELS,
  type TimingMode,
} from "../kernels/profiler.ts";
import { makeModel } from "./make_model.ts";
import { RobertaModel } from "../model/roberta.ts";
import { readConfig } from "../model/config.ts";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import { PRESET_NAMES, type PresetName } from "../model/presets.ts";

const HELP =
  `deno task profile [--preset tiny|base|large | --model DIR] [--batch B] [--seq L] [--steps N] [--out DIR]
                  [--mode timestamps|serial|auto] [--repeats R]
  --preset P   random model of preset P (written once to runs/models/P; default tiny)
  --model DIR  a model folder (config.json + model.safetensors) instead of a preset
  --batch B    sequences per step (default 8)
  --seq L      tokens per sequence (default 64)
  --steps N    timed training steps after one warm-up step (default 3)
  --out DIR    where profile.csv and trace.json go (default runs/profile)
  --mode M     timestamps: GPU timestamp-query; serial: serialized wall-clock, each dispatch replayed alone
               (for adapters without timestamp-query); auto: timestamps when available (default)
  --repeats R  serial mode: command buffers per timed wait, time divided by R (default 1)`;

const MODES = ["timestamps", "serial", "auto"] as const;

interface Args {
  preset: PresetName;
  model?: string;
  batch: number;
  seq: number;
  steps: number;
  out: string;
  mode: TimingMode | "auto";
  repeats: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    preset: "tiny",
    batch: 8,
    seq: 64,
    steps: 3,
    out: "runs/profile",
    mode: "auto",
    repeats: 1,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i], v = argv[i + 1];
    if (flag === "--help" || flag === "-h") {
      console.log(HELP);
      Deno.exit(0);
    }
    if (v === undefined) throw new Error(`${flag}: missing value\n${HELP}`);
    i++;
    const int = () => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, got ${v}`);
      return n;
    };
    if (flag === "--preset") {
      if (!(PRESET_NAMES as readonly string[]).includes(v)) {
        throw new Error(`--preset must be one of ${PRESET_NAMES.join(", ")}, got ${v}`);
      }
      a.preset = v as PresetName;
    } else if (flag === "--model") a.model = v;
    else if (flag === "--batch") a.batch = int();
    else if (flag === "--seq") a.seq = int();
    else if (flag === "--steps") a.steps = int();
    else if (flag === "--out") a.out = v;
    else if (flag === "--mode") {
      if (!(MODES as readonly string[]).includes(v)) {
        throw new Error(`--mode must be one of ${MODES.join(", ")}, got ${v}`);
      }
      a.mode = v as Args["mode"];
    } else if (flag === "--repeats") a.repeats = int();
    else throw new Error(`unknown flag ${flag}\n${HELP}`);
  }
  return a;
}

/** Bandwidth of a large buffer copy (wall time of several copies, GB/s counting read + write). */
async function copyBandwidth(gpu: Gpu): Promise<number> {
  const bytes = 64 << 20;
  const src = gpu.buffer(bytes, "profile copy src"), dst = gpu.buffer(bytes, "profile copy dst");
  const rec = new Recorder(gpu);
  const once = async (reps: number) => {
    for (let i = 0; i < reps; i++) rec.copy(src, 0, dst, 0, bytes);
    await rec.read(dst, 1);
  };
  await once(1);
  const reps = 4;
  const t0 = performance.now();
  await once(reps);
  const ms = performance.now() - t0;
  src.destroy();
  dst.destroy();
  return (2 * bytes * reps) / (ms * 1e6);
}

/** Best GEMM rate (GFLOP/s, timed in `mode`) over a few square sizes. */
async function gemmPeak(gpu: Gpu, mode: TimingMode, repeats: number): Promise<number> {
  let best = 0;
  for (const s of gpu.isCpu ? [256, 512] : [1024, 2048, 4096]) {
    const a = gpu.buffer(4 * s * s, "peak a"), b = gpu.buffer(4 * s * s, "peak b"), c = gpu.buffer(4 * s * s);
    const rec = new Recorder(gpu);
    gemm(rec, { a, b, c, m: s, n: s, k: s });
    await rec.read(c, 1);
    const prof = createProfiler(gpu, mode, { repeats });
    rec.observer = prof;
    for (let i = 0; i < 3; i++) gemm(rec, { a, b, c, m: s, n: s, k: s });
    await rec.read(c, 1);
    rec.observer = null;
    for (const e of await prof.collect()) if (e.durationNs > 0) best = Math.max(best, e.flops / e.durationNs);
    prof.destroy?.();
    a.destroy();
    b.destroy();
    c.destroy();
  }
  return best;
}

/**
 * Writes `profile.csv` (summary of `events`) and `trace.json` (Chrome trace of `traceEvents`, with `meta`
 * in its `otherData`) into `dir`, atomically, and returns the summary rows.
 */
export async function writeProfile(
  dir: string,
  events: TimedDispatch[],
  traceEvents: TimedDispatch[],
  peak?: Ceilings,
  meta: Record<string, unknown> = {},
): Promise<KernelSummary[]> {
  const rows = summarize(events, peak);
  await Deno.mkdir(dir, { recursive: true });
  await writeTextAtomic(`${dir}/profile.csv`, summaryCsv(rows));
  await writeTextAtomic(`${dir}/trace.json`, JSON.stringify(chromeTrace(traceEvents, meta)) + "\n");
  return rows;
}

/** Extra trace metadata of a profiler (the serial mode's subtracted round trip). */
function profilerMeta(prof: DispatchProfiler): Record<string, unknown> {
  const p = prof as { overheadNs?: number; repeats?: number };
  return prof.mode === "serial" ? { subtractedRoundTripNs: p.overheadNs, repeatsPerWait: p.repeats } : {};
}

/**
 * The {@link StepProfiler} of {@link profileFirstSteps}: profiles the first `steps` steps it is offered,
 * then writes its files once and does nothing more.
 */
export class FirstStepsProfiler implements StepProfiler {
  /** Steps to profile. */
  readonly steps: number;
  /** Dispatches (kernels) timed in each profiled step, in order. */
  readonly stepDispatches: number[] = [];
  /** Copies and clears timed in each profiled step, in order. */
  readonly stepTransfers: number[] = [];
  readonly #dir: string;
  readonly #log: (text: string) => void;
  readonly #prof: DispatchProfiler;
  #all: TimedDispatch[] = [];
  #attached = false;
  #previous: Recorder["observer"] = null;

  /** See {@link profileFirstSteps}. */
  constructor(prof: DispatchProfiler, steps: number, dir: string, log: (text: string) => void) {
    this.#prof = prof;
    this.steps = steps;
    this.#dir = dir;
    this.#log = log;
  }

  /** The timing used. */
  get mode(): TimingMode {
    return this.#prof.mode;
  }

  /** True once `steps` steps were profiled and the files written. */
  get done(): boolean {
    return this.stepDispatches.length >= this.steps;
  }

  /** Attaches the kernel profiler to `rec` while fewer than `steps` steps were profiled. */
  beforeStep(rec: Recorder): void {
    if (this.done || this.#attached) return;
    this.#previous = rec.observer;
    rec.observer = this.#prof;
    this.#attached = true;
  }

  /** Detaches, collects the step's times and, after the last profiled step, writes and prints the profile. */
  async afterStep(rec: Recorder, failed = false): Promise<void> {
    if (!this.#attached) return;
    rec.observer = this.#previous;
    this.#previous = null;
    this.#attached = false;
    const last = await this.#prof.collect();
    if (failed) return;
    this.#all.push(...last);
    const kernels = last.filter((e) => e.kind === "kernel").length;
    this.stepDispatches.push(kernels);
    this.stepTransfers.push(last.length - kernels);
    if (!this.done) return;
    const meta = profilerMeta(this.#prof);
    const rows = await writeProfile(this.#dir, this.#all, last, undefined, meta);
    this.#prof.destroy?.();
    this.#all = [];
    this.#log(
      `profile of the first ${this.steps} local steps (${TIMING_LABELS[this.mode]}):\n${summaryTable(rows)}`,
    );
    this.#log(`profile: wrote ${this.#dir}/profile.csv and ${this.#dir}/trace.json`);
  }
}

/**
 * A {@link StepProfiler} for `trainLocal` (used by `deno task train --profile`): profiles the first `steps`
 * local steps it sees, in `mode` (`"auto"`: GPU timestamps when the adapter has them, else serialized
 * wall-clock), then writes `profile.csv` (all profiled steps) and `trace.json` (the last one) into `dir` and
 * prints the table with `log`. Ceilings are not measured here (use `deno task profile`). It never touches
 * the model: it only sets and restores the recorder's observer around the profiled steps.
 *
 * @example
 * ```ts
 * const profiler = profileFirstSteps(model.gpu, 3, `${runDir}/profile`, console.error);
 * await trainLocal(model, data, padId, { ...options, profiler });
 * ```
 */
export function profileFirstSteps(
  gpu: Gpu,
  steps: number,
  dir: string,
  log: (text: string) => void,
  mode: TimingMode | "auto" = "auto",
): FirstStepsProfiler {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new Error(`profileFirstSteps: steps must be >= 1, got ${steps}`);
  }
  return new FirstStepsProfiler(createProfiler(gpu, mode), steps, dir, log);
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args);
  const gpu = await getGpu();
  const mode = resolveTimingMode(gpu, args.mode);
  console.log(`timing: ${TIMING_LABELS[mode]}`);
  let dir = args.model;
  if (!dir) {
    dir = `runs/models/${args.preset}`;
    if (!(await pathExists(`${dir}/model.safetensors`))) {
      console.log(`writing a random ${args.preset} model to ${dir} ...`);
      await makeModel({ preset: args.preset, out: dir });
    }
  }
  const cfg = await readConfig(dir);
  if (args.seq > cfg.maxPositionEmbeddings - 2) {
    throw new Error(`--seq ${args.seq} exceeds the model's ${cfg.maxPositionEmbeddings - 2} positions`);
  }
  const model = await RobertaModel.load(dir, {
    numLabels: 2,
    lora: { r: 8, alpha: 16, targets: ["query", "value"] },
    seed: 0,
  });
  const rnd = new KeyedRandom([0, Purpose.data, 0x9f0f]);
  const n = args.batch * args.seq;
  const inputIds = new Int32Array(n);
  for (let i = 0; i < n; i++) inputIds[i] = 3 + Math.floor(rnd.uniform() * (cfg.vocabSize - 3));
  const labels = Array.from({ length: args.batch }, (_, i) => i % 2);
  const input = { inputIds, batch: args.batch, seqLen: args.seq, labels };

  await model.trainStep(input, { lr: 1e-4, step: 1 }); // warm-up: pipeline compilation
  const rec = model.recorder;
  const prof = createProfiler(gpu, mode, { repeats: args.repeats });
  const all: TimedDispatch[] = [];
  let last: TimedDispatch[] = [];
  for (let s = 0; s < args.steps; s++) {
    rec.observer = prof;
    const t0 = performance.now();
    await model.trainStep(input, { lr: 1e-4, step: s + 2 });
    const wall = performance.now() - t0;
    rec.observer = null;
    last = await prof.collect();
    all.push(...last);
    const kernels = last.filter((e) => e.kind === "kernel");
    const sumMs = (es: TimedDispatch[]) => es.reduce((t, e) => t + e.durationNs, 0) / 1e6;
    const gpuMs = sumMs(kernels), transferMs = sumMs(last) - gpuMs;
    const span = last.length
      ? (Math.max(...last.map((e) => e.startNs + e.durationNs)) - Math.min(...last.map((e) => e.startNs))) /
        1e6
      : 0;
    console.log(
      `step ${s + 1}: ${kernels.length} dispatches, kernel time ${gpuMs.toFixed(1)} ms, ${
        last.length - kernels.length
      } copies and clears ${transferMs.toFixed(1)} ms, ` +
        (mode === "timestamps"
          ? `GPU span ${span.toFixed(1)} ms, wall ${wall.toFixed(1)} ms`
          : `step wall ${wall.toFixed(1)} ms (dispatches replayed one at a time afterwards)`),
    );
  }
  const meta = profilerMeta(prof);
  if (prof.mode === "serial") {
    console.log(
      `serial: ${(Number(meta.subtractedRoundTripNs) / 1e6).toFixed(2)} ms submit round trip subtracted`,
    );
  }
  prof.destroy?.();
  const peak: Ceilings = { gbps: await copyBandwidth(gpu), gflops: await gemmPeak(gpu, mode, args.repeats) };
  console.log(
    `ceilings: copy ${peak.gbps.toFixed(2)} GB/s (wall time), best GEMM ${peak.gflops.toFixed(2)} GFLOP/s ` +
      `(${TIMING_LABELS[mode]})`,
  );
  const rows = await writeProfile(args.out, all, last, peak, meta);
  console.log(summaryTable(rows));
  console.log(`wrote ${args.out}/profile.csv and ${args.out}/trace.json`);
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`profile: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
