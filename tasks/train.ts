/**
 * `deno task train`: federated FedLoDrop training from the command line, from a single-file experiment
 * (`--experiment FILE`, JSON or a TS module; one run or a sweep), or resuming a killed run (`--resume DIR`).
 * With no arguments it runs the built-in default: a tiny random RoBERTa, the committed SST-2 sample, 3 devices.
 * @module
 */
import { parseArgs } from "node:util";
import { DEFAULT_RUN, resolveRunConfig, RUN_HELP, type RunConfig } from "../fl/run_config.ts";
import { runDirOf, trainRun } from "./train_run.ts";
import { type Experiment, runSweep } from "./sweep.ts";

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
const FIELDS = Object.keys(DEFAULT_RUN) as (keyof RunConfig)[];
const BOOL = new Set<keyof RunConfig>(["rslora", "profile", "groupByLength"]);

function usage(): string {
  const lines = [
    "usage: deno task train [flags]            built-in default: tiny random RoBERTa, SST-2 sample, 3 devices",
    "       deno task train --experiment FILE  a run or a sweep fully specified in FILE (.json or .ts)",
    "       deno task train --resume DIR       continue a killed run from its last checkpoint",
    "",
    "flags (default in brackets):",
  ];
  for (const f of FIELDS) {
    if (f === "gammaRounds") continue;
    const d = DEFAULT_RUN[f];
    const def = d === null ? "none" : Array.isArray(d) ? d.join(",") : String(d);
    lines.push(`  --${kebab(f).padEnd(18)} ${RUN_HELP[f]} [${def}]`);
  }
  lines.push("  --experiment FILE   experiment file; flags given as well override its fields");
  lines.push("  --jobs N            a sweep's runs N at a time, side by side in child processes [1]");
  lines.push("  --resume DIR        resume the run in DIR (its run.json holds the config)");
  lines.push("  -h, --help          this text");
  return lines.join("\n");
}

function parseValue(field: keyof RunConfig, raw: string | boolean): unknown {
  if (BOOL.has(field)) return raw === true || raw === "true";
  const s = String(raw);
  const d = DEFAULT_RUN[field];
  const num = (x: string) => {
    const v = Number(x);
    if (x.trim() === "" || !Number.isFinite(v)) throw new Error(`--${kebab(field)}: "${x}" is not a number`);
    return v;
  };
  if (field === "gamma") return s.includes(",") ? s.split(",").map(num) : num(s);
  if (field === "targets") return s.split(",").map((t) => t.trim());
  if (field === "maxTrain" || field === "maxDev" || field === "localSteps") {
    return s === "none" ? null : num(s);
  }
  if (typeof d === "number" || field === "seed") return num(s);
  return s;
}

/** Parses argv into an experiment: overrides for a run, or a file's runs with the flags applied on top. */
export async function parseTrainArgs(
  argv: string[],
): Promise<{ help: boolean; resume?: string; jobs: number; experiment: Experiment }> {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
    experiment: { type: "string" },
    resume: { type: "string" },
    jobs: { type: "string" },
  };
  for (const f of FIELDS) {
    if (f !== "gammaRounds") options[kebab(f)] = { type: BOOL.has(f) ? "boolean" : "string" };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (e) {
    throw new Error(`${(e as Error).message}\nrun with --help for the list of flags`);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const overrides: Partial<RunConfig> = {};
  for (const f of FIELDS) {
    const raw = v[kebab(f)];
    if (raw !== undefined) (overrides as Record<string, unknown>)[f] = parseValue(f, raw);
  }
  const jobs = v.jobs === undefined ? 1 : Number(v.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`--jobs: "${v.jobs}" is not a positive integer`);
  let experiment: Experiment = { runs: [overrides] };
  if (typeof v.experiment === "string") experiment = await loadExperiment(v.experiment, overrides);
  return { help: !!v.help, resume: typeof v.resume === "string" ? v.resume : undefined, jobs, experiment };
}

/**
 * Reads an experiment file: `{ "run": {...} }`, `{ "base": {...}, "sweep": { "field": [v1, v2, …] } }`, or
 * `{ "runs": [{...}, …] }`; a `.ts` file's default export has the same shape.
 */
export async function loadExperiment(file: string, overrides: Partial<RunConfig> = {}): Promise<Experiment> {
  let raw: unknown;
  if (/\.[cm]?[jt]s$/.test(file)) {
    raw = (await import(new URL(file, `file://${Deno.cwd()}/`).href)).default;
  } else {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (e) {
      throw new Error(`experiment file ${file}: ${(e as Error).message}`);
    }
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new Error(`experiment file ${file}: not valid JSON (${(e as Error).message})`);
    }
  }
  const x = raw as Record<string, unknown>;
  if (typeof x !== "object" || x === null) throw new Error(`experiment file ${file}: expected an object`);
  const known = new Set(["run", "base", "sweep", "runs", "description", "compare"]);
  for (const k of Object.keys(x)) {
    if (!known.has(k)) throw new Error(`experiment file ${file}: unknown field "${k}"`);
  }
  const withOverrides = (r: unknown) => ({ ...(r as object), ...overrides });
  if (x.run) {
    return { name: fileName(file), runs: [withOverrides(x.run)], description: x.description as string };
  }
  if (x.runs) {
    if (!Array.isArray(x.runs)) throw new Error(`experiment file ${file}: "runs" must be an array`);
    return { name: fileName(file), runs: x.runs.map(withOverrides), description: x.description as string };
  }
  if (x.sweep) {
    const base = withOverrides(x.base ?? {}) as Record<string, unknown>;
    const sweep = x.sweep as Record<string, unknown[]>;
    let runs: Record<string, unknown>[] = [base];
    for (const [field, values] of Object.entries(sweep)) {
      if (!Array.isArray(values) || values.length === 0) {
        throw new Error(`experiment file ${file}: sweep.${field} must be a non-empty array`);
      }
      runs = runs.flatMap((r) =>
        values.map((v) => ({
          ...r,
          [field]: v,
          name: `${r.name ?? fileName(file)}_${field}=${Array.isArray(v) ? v.join(",") : v}`,
        }))
      );
    }
    return {
      name: fileName(file),
      runs,
      description: x.description as string,
      sweepFields: Object.keys(sweep),
    };
  }
  throw new Error(`experiment file ${file}: give "run", "runs" or "base" + "sweep"`);
}

function fileName(file: string): string {
  return file.replace(/^.*\//, "").replace(/\.(json|[cm]?[jt]s)$/, "");
}

async function main(): Promise<number> {
  let args;
  try {
    args = await parseTrainArgs(Deno.args);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
  if (args.help) {
    console.log(usage());
    return 0;
  }
  if (args.resume) {
    let cfg: RunConfig;
    try {
      cfg = resolveRunConfig(JSON.parse(await Deno.readTextFile(`${args.resume}/run.json`)).config);
    } catch (e) {
      console.error(`error: cannot resume ${args.resume}: ${(e as Error).message}`);
      return 2;
    }
    cfg.out = args.resume;
    report(await trainRun(cfg, { resume: true }));
    return 0;
  }
  const exp = args.experiment;
  let configs: RunConfig[];
  try {
    configs = exp.runs.map((r) => resolveRunConfig(r as Partial<RunConfig> & Record<string, unknown>));
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
  if (configs.length === 1 && !exp.sweepFields) {
    const cfg = configs[0];
    const isDefault = cfg.model === null;
    const s = await trainRun(cfg);
    report(s);
    if (isDefault) {
      console.log(
        `\nnote: this run used a RANDOM ${cfg.preset} RoBERTa made from the seed: it shows the pipeline works, not ` +
          `what FedLoDrop achieves.\nFor real results pass --model DIR with a Hugging Face roberta-large folder ` +
          `(config.json, model.safetensors, vocab.json, merges.txt) and --data DIR with the GLUE TSVs, e.g.\n` +
          `  npx deno task train --model ~/models/roberta-large --data ~/glue --task rte --rounds 50 --gamma 0.3`,
      );
    }
    return 0;
  }
  await runSweep(exp, configs, { jobs: args.jobs });
  return 0;
}

function report(s: Awaited<ReturnType<typeof trainRun>>): void {
  console.log(
    `\n${s.task}: final dev ${s.mainMetric} ${s.finalDev.toFixed(4)}, best ${
      s.bestDev.toFixed(4)
    } (round ${s.bestRound}), ` +
      `train−dev gap ${s.finalGap.toFixed(4)}, ${(s.bytesUp / 1e6).toFixed(2)} MB uploaded, ${
        s.seconds.toFixed(1)
      } s`,
  );
  console.log(
    `files: ${s.runDir}/ (run.json, metrics.jsonl, summary.json, metric.svg, bytes.svg, adapter/, checkpoint/)`,
  );
}

export { runDirOf };

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
