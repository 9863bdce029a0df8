/**
 * `deno task make-model --preset tiny|base|large --out DIR [--seed N] [--labels N]`: writes a random RoBERTa in
 * the Hugging Face layout — `config.json` (RobertaForSequenceClassification, `id2label` for the labels),
 * `model.safetensors` (the encoder with `roberta.` names, no classifier) and the tokenizer files — so that the
 * rest of the project (and `transformers`) can load it like a downloaded checkpoint.
 *
 * Tensors are produced and written one at a time, so even `large` (1.4 GB) never sits in memory whole. Each file
 * is written under a temporary name and renamed; `model.safetensors` comes last, so its presence means the folder
 * is complete.
 *
 * @example
 * ```ts
 * await makeModel({ preset: "tiny", out: "runs/models/tiny", seed: 1, labels: 2 });
 * ```
 * @module
 */
import { configToJson } from "../model/config.ts";
import { PRESET_NAMES, presetConfig, type PresetName } from "../model/presets.ts";
import { writeSafetensorsStreaming } from "../model/safetensors.ts";
import { initSpecs, initTensor } from "../model/weights_init.ts";

export { PRESETS } from "../model/presets.ts";

/** Options of {@link makeModel}. */
export interface MakeModelOptions {
  /** Which shapes: tiny, base or large. */
  preset: PresetName;
  /** Folder to write (created if needed). */
  out: string;
  /** Seed of the weights (u32; default 0). */
  seed?: number;
  /** Number of classifier labels written to config.json (default 2). */
  labels?: number;
}

/** Folder holding the tokenizer files copied into every model. */
export const TOKENIZER_SOURCE = new URL("../data/tokenizer/roberta/", import.meta.url);

/** Files copied from {@link TOKENIZER_SOURCE}. */
const TOKENIZER_FILES = ["vocab.json", "merges.txt"];

/** What {@link makeModel} wrote. */
export interface MakeModelResult {
  /** Number of parameters in model.safetensors. */
  parameters: number;
  /** Files written, relative to `out`. */
  files: string[];
}

/**
 * Writes a random model of `preset` into `out` (see the module documentation).
 *
 * @example
 * ```ts
 * const { parameters } = await makeModel({ preset: "tiny", out: "/tmp/tiny" });
 * ```
 */
export async function makeModel(opts: MakeModelOptions): Promise<MakeModelResult> {
  const seed = opts.seed ?? 0;
  const labels = opts.labels ?? 2;
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new Error(`seed must be an integer in [0, 2^32), got ${seed}`);
  }
  const cfg = presetConfig(opts.preset, labels);
  const out = opts.out.replace(/\/+$/, "") || ".";
  await Deno.mkdir(out, { recursive: true });
  const tmp = (name: string) => `${out}/${name}.tmp-${Deno.pid}`;

  const configText = JSON.stringify(configToJson(cfg), null, 2) + "\n";
  await Deno.writeTextFile(tmp("config.json"), configText);
  await Deno.rename(tmp("config.json"), `${out}/config.json`);

  for (const f of TOKENIZER_FILES) {
    const src = new URL(f, TOKENIZER_SOURCE);
    try {
      await Deno.copyFile(src, tmp(f));
      await Deno.chmod(tmp(f), 0o644); // the source may be read-only (a copy of a read-only data folder)
    } catch (e) {
      throw new Error(`cannot copy the tokenizer file ${src.pathname} to ${out}: ${(e as Error).message}`);
    }
    await Deno.rename(tmp(f), `${out}/${f}`);
  }

  const specs = initSpecs(cfg);
  const index = new Map(specs.map((s, i) => [s.name, i]));
  await writeSafetensorsStreaming(
    `${out}/model.safetensors`,
    specs,
    (s) => initTensor(cfg, s, index.get(s.name)!, seed),
    { format: "pt", generator: "fedlodrop make-model", preset: opts.preset, seed: String(seed) },
  );
  const parameters = specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  return { parameters, files: ["config.json", ...TOKENIZER_FILES, "model.safetensors"] };
}

/** Usage text of the command. */
export const MAKE_MODEL_HELP =
  `Usage: deno task make-model --preset tiny|base|large --out DIR [--seed N] [--labels N]

Writes a random RoBERTa in the Hugging Face layout: config.json, model.safetensors (roberta.* names, F32,
weights N(0, 0.02^2), LayerNorm 1/0, no classifier), vocab.json and merges.txt.

  --preset NAME   tiny (hidden 32, 2 layers, real 50265-token vocabulary), base (roberta-base shapes) or
                  large (roberta-large shapes, 1.4 GB)
  --out DIR       folder to write (created if needed)
  --seed N        weight seed, an integer in [0, 2^32) (default 0); the same seed gives identical files
  --labels N      number of classifier labels in config.json (default 2)
  -h, --help      show this help
`;

/** Parses the command line; returns null for --help. Throws a clear error for bad or missing flags. */
export function parseMakeModelArgs(args: string[]): MakeModelOptions | null {
  const values: Record<string, string> = {};
  const known = ["preset", "out", "seed", "labels"];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "-h" || arg === "--help") return null;
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new Error(`unexpected argument "${arg}" (flags are --preset, --out, --seed, --labels)`);
    const [, name, inline] = m;
    if (!known.includes(name)) {
      throw new Error(`unknown flag --${name} (known: ${known.map((k) => `--${k}`).join(", ")}, --help)`);
    }
    let value = inline;
    if (value === undefined) {
      value = args[++i];
      if (value === undefined || value.startsWith("--")) throw new Error(`flag --${name} needs a value`);
    }
    if (name in values) throw new Error(`flag --${name} is given twice`);
    values[name] = value;
  }
  if (values.preset === undefined) {
    throw new Error(`--preset is required (one of ${PRESET_NAMES.join(", ")})`);
  }
  if (!(PRESET_NAMES as readonly string[]).includes(values.preset)) {
    throw new Error(`--preset must be one of ${PRESET_NAMES.join(", ")}, got "${values.preset}"`);
  }
  if (!values.out) throw new Error("--out DIR is required");
  const int = (name: string, lo: number, hi: number): number | undefined => {
    const v = values[name];
    if (v === undefined) return undefined;
    const n = /^\d+$/.test(v) ? Number(v) : NaN;
    if (!(n >= lo && n <= hi)) throw new Error(`--${name} must be an integer in [${lo}, ${hi}], got "${v}"`);
    return n;
  };
  return {
    preset: values.preset as PresetName,
    out: values.out,
    seed: int("seed", 0, 0xffffffff),
    labels: int("labels", 1, 1_000_000),
  };
}

if (import.meta.main) {
  let opts: MakeModelOptions | null;
  try {
    opts = parseMakeModelArgs(Deno.args);
  } catch (e) {
    console.error(`make-model: ${(e as Error).message}\n\n${MAKE_MODEL_HELP}`);
    Deno.exit(2);
  }
  if (opts === null) {
    console.log(MAKE_MODEL_HELP);
    Deno.exit(0);
  }
  const t0 = performance.now();
  try {
    const r = await makeModel(opts);
    console.log(
      `make-model: wrote ${opts.preset} (${r.parameters.toLocaleString("en")} parameters, seed ${
        opts.seed ?? 0
      }, ${opts.labels ?? 2} labels) to ${opts.out} in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${
        r.files.join(", ")
      }`,
    );
  } catch (e) {
    console.error(`make-model: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
