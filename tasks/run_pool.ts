/**
 * Several training runs, one after another in this process (`jobs` 1) or side by side in child processes
 * (`jobs` > 1), for sweeps and experiment grids.
 *
 * Why side by side: on a CPU adapter (Mesa llvmpipe) one small-model run keeps the cores only partly busy — the
 * host encodes and submits between dispatches on one core, and small dispatches do not split well across
 * llvmpipe's threads. Measured on 2 cores with two MiniLM SST-2 runs (bench/NOTES.md entry 34): 204 and 225 s
 * one after the other (1.55 cores busy), 159 s side by side with one llvmpipe thread each (1.91 cores). So each
 * child gets `LP_NUM_THREADS` = cores / min(jobs, runs) (at least 1) unless the caller's environment sets it.
 *
 * Results do not depend on `jobs`: every random choice flows from the run's seed, each run has its own process
 * and WebGPU device, and llvmpipe's thread count does not change a kernel's arithmetic (tested: the same
 * metrics and adapter bytes either way).
 *
 * Run as a program, this module is the child: it reads one run config (JSON) from stdin, trains it quietly and
 * leaves `summary.json` in the run folder, which the parent reads.
 * @module
 */
import { resolveRunConfig, type RunConfig } from "../fl/run_config.ts";
import { resolve } from "node:path";
import { runDirOf, type RunSummaryFile, trainRun } from "./train_run.ts";

/** Options of {@link runConfigs}. */
export interface RunPoolOptions {
  /** Runs at a time: 1 (default) trains in this process, one after another; more start child processes. */
  jobs?: number;
  /** Called when a run starts (`index` into the configs). */
  onStart?: (cfg: RunConfig, index: number) => void;
  /** Called as each run finishes, in finishing order. */
  onFinish?: (cfg: RunConfig, summary: RunSummaryFile, index: number) => void;
}

/**
 * `LP_NUM_THREADS` for each of `jobs` children on a machine with `cores` cores running `runs` configs: an even
 * share among the children that run at once (fewer than `jobs` when there are fewer configs), at least 1.
 */
export function llvmpipeThreadsPerJob(cores: number, jobs: number, runs = jobs): number {
  return Math.max(1, Math.floor(cores / Math.max(1, Math.min(jobs, runs))));
}

/**
 * Trains every config (quietly) and returns the summaries in the configs' order; configs that would write to
 * the same run folder are refused before any run starts. With `jobs` > 1 up to that
 * many child processes run at once; if one fails, no further run starts, the running ones finish, and the
 * returned promise rejects naming every failed run (their own errors went to stderr).
 *
 * @example
 * ```ts
 * const configs = [0, 0.3].map((gamma) => resolveRunConfig({ name: `g${gamma}`, gamma }));
 * const summaries = await runConfigs(configs, { jobs: 2 });
 * console.log(summaries.map((s) => s.finalDev));
 * ```
 */
export async function runConfigs(configs: RunConfig[], opts: RunPoolOptions = {}): Promise<RunSummaryFile[]> {
  const jobs = opts.jobs ?? 1;
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`jobs must be a positive integer, got ${jobs}`);
  const byDir = new Map<string, string>();
  for (const cfg of configs) {
    const dir = resolve(runDirOf(cfg));
    const other = byDir.get(dir);
    if (other !== undefined) {
      throw new Error(
        `runs "${other}" and "${cfg.name}" would both write to ${
          runDirOf(cfg)
        }: give each run its own out folder`,
      );
    }
    byDir.set(dir, cfg.name);
  }
  const out: RunSummaryFile[] = new Array(configs.length);
  if (jobs === 1) {
    for (const [i, cfg] of configs.entries()) {
      opts.onStart?.(cfg, i);
      out[i] = await trainRun(cfg, { quiet: true });
      opts.onFinish?.(cfg, out[i], i);
    }
    return out;
  }
  const env: Record<string, string> = {};
  if (Deno.env.get("LP_NUM_THREADS") === undefined) {
    env.LP_NUM_THREADS = String(llvmpipeThreadsPerJob(navigator.hardwareConcurrency, jobs, configs.length));
  }
  const failed: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < configs.length && failed.length === 0) {
      const i = next++;
      const cfg = configs[i];
      opts.onStart?.(cfg, i);
      const code = await runChild(cfg, env);
      if (code !== 0) {
        failed.push(`${cfg.name} (exit code ${code})`);
        continue;
      }
      const file = `${runDirOf(cfg)}/summary.json`;
      out[i] = JSON.parse(await Deno.readTextFile(file)) as RunSummaryFile;
      opts.onFinish?.(cfg, out[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, configs.length) }, worker));
  if (failed.length > 0) {
    throw new Error(
      `${failed.length} run(s) failed: ${failed.join(", ")}; their errors are printed above` +
        (next < configs.length ? `; ${configs.length - next} run(s) not started` : ""),
    );
  }
  return out;
}

/**
 * Trains one config in a child process (this module as a program); resolves to its exit code. The child's
 * stderr (progress, errors) is passed on line by line, each line prefixed with the run's name.
 */
async function runChild(cfg: RunConfig, env: Record<string, string>): Promise<number> {
  // A summary left by an earlier attempt must not be read as this run's.
  await Deno.remove(`${runDirOf(cfg)}/summary.json`).catch(() => {});
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--unstable-webgpu",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      new URL(import.meta.url).pathname,
    ],
    env,
    stdin: "piped",
    stdout: "inherit",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(cfg)));
  await w.close();
  await prefixLines(child.stderr, `[${cfg.name}] `);
  return (await child.status).code;
}

/** Copies a byte stream to this process's stderr, a prefix before each line. */
async function prefixLines(stream: ReadableStream<Uint8Array>, prefix: string): Promise<void> {
  const enc = new TextEncoder();
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    if (lines.length > 0) await writeAll(enc.encode(lines.map((l) => prefix + l + "\n").join("")));
  }
  if (rest !== "") await writeAll(enc.encode(prefix + rest + "\n"));
}

async function writeAll(bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await Deno.stderr.write(bytes.subarray(off));
}

async function childMain(): Promise<number> {
  const text = await new Response(Deno.stdin.readable).text();
  let cfg: RunConfig;
  try {
    cfg = resolveRunConfig(JSON.parse(text));
  } catch (e) {
    console.error(`run_pool child: bad run config on stdin: ${(e as Error).message}`);
    return 2;
  }
  try {
    await trainRun(cfg, { quiet: true });
  } catch (e) {
    console.error(`error: run ${cfg.name}: ${(e as Error).message}`);
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await childMain());
