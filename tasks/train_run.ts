/**
 * One federated training run from a resolved config: prepares the model (a folder, or a random preset made
 * from the seed), the tokenizer, the GLUE data and its split, then runs the rounds and writes the run folder:
 * `run.json` (resolved config + provenance), `metrics.jsonl`, `summary.json`, SVG plots, the peft adapter and
 * the per-round checkpoint. `resume` continues from the folder's checkpoint with identical results.
 * @module
 */
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import { readCheckpoint } from "../fl/checkpoint.ts";
import {
  type Federation,
  formatSeconds,
  moduleSpecs,
  type RoundResult,
  runRounds,
} from "../fl/federation.ts";
import { profileFirstSteps } from "./profile.ts";
import { lineChartSvg } from "../fl/plots.ts";
import type { RunConfig } from "../fl/run_config.ts";
import { readMetrics, RunLog, summarizeRun } from "../fl/run_log.ts";
import { parseSplit, splitData } from "../fl/split.ts";
import { pathExists, writeTextAtomic } from "../fl/atomic_write.ts";
import { encodeExamples } from "../model/batch.ts";
import { RobertaModel } from "../model/roberta.ts";
import { loadTokenizer } from "../model/tokenizer.ts";
import { SafetensorsFile, writeSafetensorsStreaming } from "../model/safetensors.ts";
import { makeModel } from "./make_model.ts";
import { DEFAULT_DATA_DIR, readGlueSplit } from "./glue.ts";
import { glueMetrics } from "./metrics.ts";
import { glueTask } from "./registry.ts";
import { readPlan } from "../opt/plan.ts";

/** What a finished run reports. */
export interface RunSummaryFile {
  name: string;
  task: string;
  mainMetric: string;
  finalDev: number;
  bestDev: number;
  bestRound: number;
  finalTrain: number;
  finalGap: number;
  bytesUp: number;
  bytesDown: number;
  rounds: number;
  seconds: number;
  runDir: string;
}

async function gitCommit(): Promise<string | null> {
  try {
    const out = await new Deno.Command("git", {
      args: ["rev-parse", "HEAD"],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

/** The run folder of a config. */
export function runDirOf(cfg: RunConfig): string {
  return cfg.out ?? `runs/${cfg.name}`;
}

/** Makes (once) the random model of a preset for this seed and label count; returns its folder. */
export async function presetModelDir(
  preset: RunConfig["preset"],
  seed: number,
  labels: number,
): Promise<string> {
  const dir = `runs/models/${preset}-seed${seed}-labels${labels}`;
  if (!(await pathExists(`${dir}/model.safetensors`))) {
    console.error(`fedlodrop: making a random ${preset} RoBERTa in ${dir} (seed ${seed})`);
    await makeModel({ preset, out: dir, seed, labels });
  }
  return dir;
}

/**
 * Runs (or resumes) one federated training run.
 *
 * @example
 * ```ts
 * const summary = await trainRun(resolveRunConfig({ rounds: 2 }));
 * ```
 */
export async function trainRun(
  cfg: RunConfig,
  opts: { resume?: boolean; quiet?: boolean } = {},
): Promise<RunSummaryFile> {
  const t0 = performance.now();
  const task = glueTask(cfg.task);
  const runDir = runDirOf(cfg);
  const dataDir = cfg.data ?? DEFAULT_DATA_DIR;
  // Everything that can fail on bad input is checked before training starts.
  const plan = cfg.plan ? await readPlan(cfg.plan) : null;
  if (plan && plan.devices.length !== cfg.devices) {
    throw new Error(`plan ${cfg.plan} has ${plan.devices.length} devices but the run has ${cfg.devices}`);
  }
  let trainEx = await readGlueSplit(dataDir, task.name, "train");
  let devEx = await readGlueSplit(dataDir, task.name, "dev");
  if (cfg.maxTrain !== null && trainEx.length > cfg.maxTrain) {
    const order = trainEx.map((_, i) => i);
    new KeyedRandom([cfg.seed, Purpose.split, 1]).shuffle(order);
    trainEx = order.slice(0, cfg.maxTrain).sort((a, b) => a - b).map((i) => trainEx[i]);
  }
  if (cfg.maxDev !== null) devEx = devEx.slice(0, cfg.maxDev);
  const modelDir = cfg.model ?? await presetModelDir(cfg.preset, cfg.seed, task.numLabels);
  const tokenizerDir =
    (await pathExists(`${modelDir}/vocab.json`)) || (await pathExists(`${modelDir}/tokenizer.json`)) ||
      (await pathExists(`${modelDir}/vocab.txt`))
      ? modelDir
      : new URL("../data/tokenizer/roberta", import.meta.url).pathname;
  const tokenizer = await loadTokenizer(tokenizerDir);
  const model = await RobertaModel.load(modelDir, {
    numLabels: task.numLabels,
    lora: {
      r: cfg.rank,
      alpha: cfg.alpha,
      targets: cfg.targets as RobertaModel["lora"]["targets"],
      rslora: cfg.rslora,
      dropout: cfg.loraDropout,
    },
    seed: cfg.seed,
  });
  const train = encodeExamples(tokenizer, trainEx, cfg.maxLength);
  const dev = encodeExamples(tokenizer, devEx, cfg.maxLength);
  const split = splitData({
    labels: trainEx.map((e) => e.label),
    devices: cfg.devices,
    kind: parseSplit(cfg.split),
    seed: cfg.seed,
    regression: task.regression,
  });
  const evalIdx = train.map((_, i) => i);
  new KeyedRandom([cfg.seed, Purpose.split, 2]).shuffle(evalIdx);
  const trainEval = evalIdx.slice(0, cfg.trainEvalSize).sort((a, b) => a - b).map((i) => train[i]);

  await Deno.mkdir(runDir, { recursive: true });
  let startRound = 0;
  let global = await model.getAdapter();
  let residualRanks = new Map<string, number>();
  if (opts.resume) {
    const ck = await readCheckpoint(runDir);
    if (ck) {
      model.setAdapter(ck.adapter);
      for (const [name, w] of ck.baseWeights) model.writeModuleWeight(name.replace(/\.weight$/, ""), w);
      global = ck.adapter;
      residualRanks = ck.residualRanks;
      startRound = ck.round + 1;
      console.error(`fedlodrop: resuming ${runDir} after round ${ck.round + 1}`);
    } else console.error(`fedlodrop: no checkpoint in ${runDir}; starting from round 1`);
  }
  const runJson = {
    config: cfg,
    provenance: {
      commit: await gitCommit(),
      deno: Deno.version,
      adapter: model.gpu.describe(),
      modelDir,
      dataDir,
      startedAt: new Date().toISOString(),
      resumedAtRound: opts.resume ? startRound : undefined,
    },
  };
  await writeTextAtomic(`${runDir}/run.json`, JSON.stringify(runJson, null, 2) + "\n");
  const log = await RunLog.create(
    `${runDir}/metrics.jsonl`,
    startRound > 0 ? { resumeAfterRound: startRound - 1 } : {},
  );
  const main = task.mainMetric;
  const fed: Federation = {
    cfg,
    runDir,
    model,
    padId: tokenizer.padId,
    deviceData: split.map((idx) => idx.map((i) => train[i])),
    dev,
    trainEval,
    log,
    score: (p, l) => glueMetrics(task.name, p, l),
    mainMetric: main,
    plan: plan
      ? {
        gamma: plan.devices.map((d) => d.gamma),
        cost: plan.devices.map((d) => ({
          latency_s: d.latency_s,
          energy_j: d.energy_j,
          bandwidth_hz: d.bandwidth_hz,
        })),
      }
      : undefined,
    profiler: cfg.profile
      ? profileFirstSteps(model.gpu, 3, `${runDir}/profile`, (t) => console.error(t), "auto")
      : undefined,
  };
  if (!opts.quiet) {
    console.error(
      `fedlodrop: ${task.name} with ${train.length} training / ${dev.length} dev examples on ${cfg.devices} devices ` +
        `(${fed.deviceData.map((d) => d.length).join("/")}), ${
          moduleSpecs(model).length
        } adapted modules, ${model.gpu.describe()}`,
    );
  }
  const results = await runRounds(fed, global, startRound, residualRanks);
  if (!opts.quiet) printRounds(results, main);

  // Final outputs.
  await model.saveAdapter(`${runDir}/adapter`);
  if (cfg.aggregator === "fedex" && cfg.mergedModel === "write") {
    await exportMergedModel(model, modelDir, `${runDir}/adapter/merged_base`);
  }
  const records = await readMetrics(`${runDir}/metrics.jsonl`);
  const s = summarizeRun(records, { metric: `dev.${main}` });
  const last = records.filter((r) => r.kind === "round").at(-1) as Record<string, unknown> | undefined;
  const trainMain = (last?.trainEval as Record<string, number> | undefined)?.[main] ?? NaN;
  const summary: RunSummaryFile = {
    name: cfg.name,
    task: task.name,
    mainMetric: main,
    finalDev: s.final,
    bestDev: s.best,
    bestRound: s.bestRound + 1,
    finalTrain: trainMain,
    finalGap: trainMain - s.final,
    bytesUp: s.bytesUp,
    bytesDown: s.bytesDown,
    rounds: s.rounds,
    seconds: (performance.now() - t0) / 1000,
    runDir,
  };
  await writeTextAtomic(`${runDir}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
  await writePlots(runDir, records, main);
  return summary;
}

function printRounds(results: RoundResult[], main: string): void {
  if (results.length === 0) return;
  console.log(`round  train-loss  dev-loss  train-${main}  dev-${main}  gap      bytes-up  time`);
  for (const r of results) {
    console.log(
      `${String(r.round + 1).padStart(5)}  ${r.trainLoss.toFixed(4).padStart(10)}  ${
        r.devLoss.toFixed(4).padStart(8)
      }  ${(r.train[main] ?? NaN).toFixed(4).padStart(6 + main.length)}  ${
        (r.dev[main] ?? NaN).toFixed(4).padStart(4 + main.length)
      }  ${((r.train[main] ?? NaN) - (r.dev[main] ?? NaN)).toFixed(4).padStart(7)}  ${
        String(r.bytesUp).padStart(8)
      }  ${formatSeconds(r.seconds)}`,
    );
  }
}

async function writePlots(runDir: string, records: Awaited<ReturnType<typeof readMetrics>>, main: string) {
  const rounds = records.filter((r) => r.kind === "round") as Record<string, unknown>[];
  const pts = (f: (r: Record<string, unknown>) => unknown) =>
    rounds.map((r) => [(r.round as number) + 1, Number(f(r))] as [number, number]);
  const m = (k: string) => (r: Record<string, unknown>) =>
    (r[k] as Record<string, number> | undefined)?.[main];
  await writeTextAtomic(
    `${runDir}/metric.svg`,
    lineChartSvg({
      title: `${main} per round`,
      xLabel: "round",
      yLabel: main,
      series: [{ name: "dev", points: pts(m("dev")) }, {
        name: "train (subsample)",
        points: pts(m("trainEval")),
      }, {
        name: "train − dev gap",
        points: pts((r) => r.gap),
      }],
    }),
  );
  await writeTextAtomic(
    `${runDir}/bytes.svg`,
    lineChartSvg({
      title: "bytes per round (all devices)",
      xLabel: "round",
      yLabel: "bytes",
      series: [{ name: "uplink", points: pts((r) => r.bytesUp) }, {
        name: "downlink",
        points: pts((r) => r.bytesDown),
      }],
    }),
  );
}

/**
 * With exact aggregation the frozen weights changed: write a full `model.safetensors` (the original tensors with
 * the adapted modules' weights replaced) so the result is usable outside this project.
 */
const FLOAT_DTYPES = new Set(["F32", "F16", "BF16"]);

async function exportMergedModel(model: RobertaModel, modelDir: string, outDir: string): Promise<void> {
  await Deno.mkdir(outDir, { recursive: true });
  const src = await SafetensorsFile.open(`${modelDir}/model.safetensors`);
  try {
    const changed = new Map<string, string>();
    for (const m of model.modules) {
      for (const cand of [`${m.path}.weight`, `${m.path.replace(/^(roberta|bert)\./, "")}.weight`]) {
        if (src.tensors.has(cand)) changed.set(cand, m.path);
      }
    }
    // Integer buffers such as BERT's `embeddings.position_ids` are not weights: Hugging Face rebuilds them.
    const specs = [...src.tensors.values()].filter((t) => FLOAT_DTYPES.has(t.dtype)).map((t) => ({
      name: t.name,
      shape: t.shape,
    }));
    await writeSafetensorsStreaming(`${outDir}/model.safetensors`, specs, async (spec) => {
      const path = changed.get(spec.name);
      return path ? await model.readModuleWeight(path) : await src.readF32(spec.name);
    }, { format: "pt" });
  } finally {
    src.close();
  }
  await Deno.copyFile(`${modelDir}/config.json`, `${outDir}/config.json`);
}
