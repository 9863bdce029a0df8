/**
 * Sweeps: several runs from one experiment file, one run folder each, and a comparison table (final and best
 * dev metric, train/dev gap, bytes uploaded) written as CSV and Markdown next to them and printed.
 * @module
 */
import { writeTextAtomic } from "../fl/atomic_write.ts";
import type { RunConfig } from "../fl/run_config.ts";
import { runConfigs } from "./run_pool.ts";
import type { RunSummaryFile } from "./train_run.ts";

/** An experiment: runs (partial configs) and, for a sweep, the fields that vary. */
export interface Experiment {
  name?: string;
  description?: string;
  runs: Record<string, unknown>[];
  sweepFields?: string[];
}

/**
 * Runs every config (each resumable on its own), `jobs` at a time (1: in order in this process; more: side by
 * side in child processes, see {@link runConfigs}), and writes `runs/<experiment>/comparison.{csv,md}` with the
 * runs in the configs' order.
 */
export async function runSweep(
  exp: Experiment,
  configs: RunConfig[],
  opts: { jobs?: number } = {},
): Promise<RunSummaryFile[]> {
  const root = `runs/${exp.name ?? "sweep"}`;
  const placed = configs.map((c) => ({ ...c, out: c.out ?? `${root}/${c.name}` }));
  const out = await runConfigs(placed, {
    jobs: opts.jobs,
    onStart: (cfg, i) => console.error(`fedlodrop: sweep run ${i + 1}/${configs.length}: ${cfg.name}`),
  });
  const fields = exp.sweepFields ?? [];
  const header = [
    "run",
    ...fields,
    "final_dev",
    "best_dev",
    "best_round",
    "final_train",
    "gap",
    "bytes_up",
    "seconds",
  ];
  const rows = out.map((s, i) => [
    s.name,
    ...fields.map((f) => JSON.stringify((configs[i] as unknown as Record<string, unknown>)[f])),
    s.finalDev.toFixed(4),
    s.bestDev.toFixed(4),
    String(s.bestRound),
    s.finalTrain.toFixed(4),
    s.finalGap.toFixed(4),
    String(s.bytesUp),
    s.seconds.toFixed(1),
  ]);
  await Deno.mkdir(root, { recursive: true });
  await writeTextAtomic(
    `${root}/comparison.csv`,
    [header, ...rows].map((r) => r.join(",")).join("\n") + "\n",
  );
  const md = [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
  await writeTextAtomic(`${root}/comparison.md`, md + "\n");
  console.log(`metric: ${out[0]?.mainMetric ?? "?"} (dev; gap = train subsample − dev)`);
  console.log(md);
  console.log(`\nfiles: ${root}/comparison.csv, ${root}/comparison.md and one folder per run`);
  return out;
}
