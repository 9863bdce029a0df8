/**
 * `deno task profile [--preset tiny|base|large | --model DIR] [--batch B] [--seq L] [--steps N] [--out DIR]`
 *
 * Runs training steps of a RoBERTa + LoRA model with the kernel profiler attached and prints, per kernel and
 * shape: calls, total and median GPU time, share of the step, FLOPs and bytes counted by the launchers,
 * achieved GFLOP/s and GB/s and their fraction of ceilings measured in the same run (a large buffer copy for
 * bandwidth, the best of a few GEMMs for compute). GPU times come from `timestamp-query`; the summed kernel
 * time of each step is printed next to its wall time as a sanity check. Writes `profile.csv` (table over the
 * timed steps) and `trace.json` (Chrome trace-event JSON of the last step) into `--out` (default
 * `runs/profile/`). The first step is a warm-up (pipeline compilation) and is not counted.
 * @module
 */
import { getGpu, type Gpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import { gemm } from "../kernels/gemm.ts";
import {
  type Ceilings,
  chromeTrace,
  hasTimestamps,
  KernelProfiler,
  type KernelSummary,
  summarize,
  summaryCsv,
  summaryTable,
  type TimedDispatch,
} from "../kernels/profiler.ts";
import { makeModel } from "./make_model.ts";
import { RobertaModel } from "../model/roberta.ts";
import { readConfig } from "../model/config.ts";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import { PRESET_NAMES, type PresetName } from "../model/presets.ts";

const HELP =
  `deno task profile [--preset tiny|base|large | --model DIR] [--batch B] [--seq L] [--steps N] [--out DIR]
  --preset P   random model of preset P (written once to runs/models/P; default tiny)
  --model DIR  a model folder (config.json + model.safetensors) instead of a preset
  --batch B    sequences per step (default 8)
  --seq L      tokens per sequence (default 64)
  --steps N    timed training steps after one warm-up step (default 3)
  --out DIR    where profile.csv and trace.json go (default runs/profile)`;

interface Args {
  preset: PresetName;
  model?: string;
  batch: number;
  seq: number;
  steps: number;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { preset: "tiny", batch: 8, seq: 64, steps: 3, out: "runs/profile" };
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

/** Best GEMM rate (GFLOP/s, from timestamps) over a few square sizes. */
async function gemmPeak(gpu: Gpu): Promise<number> {
  let best = 0;
  for (const s of gpu.isCpu ? [256, 512] : [1024, 2048, 4096]) {
    const a = gpu.buffer(4 * s * s, "peak a"), b = gpu.buffer(4 * s * s, "peak b"), c = gpu.buffer(4 * s * s);
    const rec = new Recorder(gpu);
    gemm(rec, { a, b, c, m: s, n: s, k: s });
    await rec.read(c, 1);
    const prof = new KernelProfiler(gpu);
    rec.observer = prof;
    for (let i = 0; i < 3; i++) gemm(rec, { a, b, c, m: s, n: s, k: s });
    await rec.read(c, 1);
    for (const e of await prof.collect()) if (e.durationNs > 0) best = Math.max(best, e.flops / e.durationNs);
    a.destroy();
    b.destroy();
    c.destroy();
  }
  return best;
}

/**
 * Writes `profile.csv` (summary of `events`) and `trace.json` (Chrome trace of `traceEvents`) into `dir`,
 * atomically, and returns the summary rows.
 */
export async function writeProfile(
  dir: string,
  events: TimedDispatch[],
  traceEvents: TimedDispatch[],
  peak?: Ceilings,
): Promise<KernelSummary[]> {
  const rows = summarize(events, peak);
  await Deno.mkdir(dir, { recursive: true });
  await writeAtomic(`${dir}/profile.csv`, summaryCsv(rows));
  await writeAtomic(`${dir}/trace.json`, JSON.stringify(chromeTrace(traceEvents)) + "\n");
  return rows;
}

/**
 * Profiles the model's next `steps` calls of `trainStep` (used by `deno task train --profile`): attaches a
 * {@link KernelProfiler} to `model.recorder` for each of those steps only, then writes `profile.csv` (all
 * profiled steps) and `trace.json` (the last one) into `dir` and prints the table with `log`. Ceilings are
 * not measured here (use `deno task profile`). Afterwards `trainStep` is the model's own method again.
 *
 * @example
 * ```ts
 * profileFirstSteps(model, 3, `${runDir}/profile`, console.error);
 * ```
 */
export function profileFirstSteps(
  model: RobertaModel,
  steps: number,
  dir: string,
  log: (text: string) => void,
): void {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new Error(`profileFirstSteps: steps must be >= 1, got ${steps}`);
  }
  if (!hasTimestamps(model.gpu)) {
    log("profile: this adapter has no 'timestamp-query' feature; --profile ignored");
    return;
  }
  const prof = new KernelProfiler(model.gpu);
  const own = model.trainStep;
  const all: TimedDispatch[] = [];
  let done = 0;
  model.trainStep = async function (this: RobertaModel, ...args: Parameters<RobertaModel["trainStep"]>) {
    const rec = model.recorder;
    rec.observer = prof;
    let loss: number;
    try {
      loss = await own.apply(model, args);
    } finally {
      rec.observer = null;
    }
    const last = await prof.collect();
    all.push(...last);
    if (++done === steps) {
      delete (model as { trainStep?: unknown }).trainStep; // back to the prototype's method
      const rows = await writeProfile(dir, all, last);
      log(`profile of the first ${steps} local steps (GPU timestamps):\n${summaryTable(rows)}`);
      log(`profile: wrote ${dir}/profile.csv and ${dir}/trace.json`);
    }
    return loss;
  };
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args);
  const gpu = await getGpu();
  if (!hasTimestamps(gpu)) {
    throw new Error("this adapter has no 'timestamp-query' feature: deno task profile needs it");
  }
  let dir = args.model;
  if (!dir) {
    dir = `runs/models/${args.preset}`;
    if (!(await exists(`${dir}/model.safetensors`))) {
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
  const prof = new KernelProfiler(gpu);
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
    const gpuMs = last.reduce((t, e) => t + e.durationNs, 0) / 1e6;
    const span = last.length
      ? (Math.max(...last.map((e) => e.startNs + e.durationNs)) - Math.min(...last.map((e) => e.startNs))) /
        1e6
      : 0;
    console.log(
      `step ${s + 1}: ${last.length} dispatches, kernel time ${gpuMs.toFixed(1)} ms, ` +
        `GPU span ${span.toFixed(1)} ms, wall ${wall.toFixed(1)} ms`,
    );
  }
  const peak: Ceilings = { gbps: await copyBandwidth(gpu), gflops: await gemmPeak(gpu) };
  console.log(
    `ceilings: copy ${peak.gbps.toFixed(2)} GB/s (wall time), best GEMM ${peak.gflops.toFixed(2)} GFLOP/s`,
  );
  const rows = await writeProfile(args.out, all, last, peak);
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
