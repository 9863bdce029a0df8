/**
 * `deno task bench step [--preset tiny|base|large | --model DIR] [--batch B] [--seq L] [--steps N]
 * [--targets query,value] [--rank R] [--no-torch] [--torch-device auto|cpu|cuda] [--no-batched-texture]
 * [--forward-only] [--packed-weights MIB] [--compare-batched-texture] [--compare-tile-rows] [--tile-cols 16,8]
 * [--compare-tile-cols] [--compare-cls-rows] [--compare-shared-tile]`: wall time of one RoBERTa forward pass
 * (evaluation) and of one training step (forward with dropout, loss, backward, AdamW) on the WebGPU device, with
 * tokens/s, achieved GFLOP/s, submits and dispatches per step, host encoding time, and peak memory (process RSS
 * against the bytes the model must hold).
 *
 * The model is a random checkpoint of the preset's shapes, written once to `runs/models/<preset>-seed0-labels2`
 * (by `makeModel`) when that folder has no `model.safetensors` yet. Each measurement runs one warm-up (which
 * compiles the pipelines and allocates the activation plan) and then `--steps` timed repetitions; the median
 * is printed, with the warm-up's own time and the number of kernels it built (on llvmpipe most of a first
 * run's warm-up is compiling them, unless Mesa's shader cache already holds them). Times include the final
 * readback (logits or per-example losses), which is what a caller waits for.
 * "host encode" is the host time a step spends before its command buffer is finished (model code, uniform
 * packing, bind groups, compute passes; measured with a recorder observer from the step's start, or the end of
 * the previous submit, to `beforeFinish`, so it needs no model hook), as a share of the step's wall time: the
 * dispatch/encoding overhead the issue asks about. "finish+submit call" is the time inside the uniform upload,
 * `encoder.finish()` and `queue.submit`; on llvmpipe (Deno 2.9.6) `queue.submit` returns only after most of
 * the work has run, so that figure is mostly execution, not overhead.
 *
 * `--packed-weights MIB` sets the texture budget for frozen weights kept packed between products (CPU adapters;
 * default 128 MiB, 0 = pack every product's weight as before).
 * `--forward-only` skips the training step (e.g. for roberta-large, whose step takes many minutes here).
 * `--no-batched-texture` keeps the batched (attention) products on the buffer-fed GEMM kernels (the state
 * before bench/NOTES.md entry 14), for before/after comparisons; `--compare-batched-texture` times extra
 * forward passes alternating both choices in one process (same load for both). `--compare-tile-rows` does the
 * same with training steps for the texture tile's workgroup height: fitted to the product's rows (the default,
 * `gemmAutoOptions.fitTileRows`) or always 8 invocations high (bench/NOTES.md entry 36). `--compare-cls-rows`
 * alternates forward passes and training steps whose last layer computes the [CLS] rows alone (the default) or
 * every position (`RobertaModel.lastLayerAllRows`; bench/NOTES.md entry 37). `--tile-cols 16,8` sets the
 * columns per invocation the default texture tile may take, widest first (`gemmAutoOptions.tileCols`), and
 * `--compare-tile-cols` alternates training steps with those against 8 columns everywhere (entry 40).
 * `--compare-shared-tile` (GPU adapters) alternates training steps on the blocked workgroup-memory GEMM
 * (`BLOCKED_SHARED_GEMM_TILE`) against the default strided one (`gemmAutoOptions.sharedTile`; entry 45).
 *
 * Then (unless `--no-torch`) the PyTorch float32 baseline `bench/torch_step.py` runs as a subprocess with the
 * same preset, batch, sequence length, targets, rank and step count on the same machine, and the ratios
 * ours/theirs of tokens/s are printed (skipped with a message when no Python with torch is found — see
 * {@link runTorchBaseline} — or with `--model`, whose shapes the script does not know). `--torch-device` picks
 * where torch runs: `auto` (default) uses CUDA when our WebGPU adapter is a GPU (the same card on a one-GPU
 * machine) and the CPU otherwise.
 *
 * ## FLOP count (multiply-adds count 2; element-wise work — LayerNorm, softmax, GELU, dropout, adds — ignored)
 * With M = B·T tokens, hidden H, intermediate I, N layers, labels C, LoRA rank r and, per adapted target,
 * its `nn.Linear` size nIn → nOut:
 * - forward, per layer: Q, K, V and attention-output projections 4·2·M·H², feed-forward 2·2·M·H·I,
 *   attention scores Q·Kᵀ and context P·V 2·2·B·T²·H (over all heads: h·d = H), and per target the LoRA branch
 *   t = x·Aᵀ (2·M·nIn·r) and t·Bᵀ (2·M·r·nOut); the head on the B first tokens 2·B·H² + 2·B·H·C. The last
 *   layer computes only the B [CLS] rows (`RobertaModel.lastLayerAllRows` false): there M becomes B in every
 *   product but K, V and their LoRA branches, and T² becomes T in the attention products.
 * - backward: the frozen weights get no gradient, so every frozen linear costs only its dX product (the same
 *   size as its forward product) and nothing for dW — which makes the backward about 1× the forward, not the
 *   usual 2×. Per layer: dX through the feed-forward 2·2·M·H·I, through the attention output 2·M·H², through
 *   Q, K, V 3·2·M·H² (skipped in layer 0: nothing trainable below it); attention dP = dC·Vᵀ, dV = Pᵀ·dC,
 *   dQ = dS·K, dK = dSᵀ·Q: 4·2·B·T²·H (twice the forward's two products); per target dB = dyᵀ·t (2·M·nOut·r),
 *   dt = dy·B (2·M·nOut·r), dA = dtᵀ·x (2·M·r·nIn) and dx += dt·A (2·M·r·nIn; not for Q/K/V of layer 0).
 *   Head: dW and dX of both linears 2·(2·B·H² + 2·B·H·C). AdamW (~10 flops per trainable value) is ignored.
 *
 * @example
 * ```sh
 * deno task bench step --preset tiny --batch 8 --seq 64
 * deno task bench step --preset base --batch 8 --seq 128 --steps 2
 * ```
 * @module
 */
import { pathExists } from "../fl/atomic_write.ts";
import { parseArgs } from "node:util";
import type { DispatchObserver } from "../kernels/recorder.ts";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import { checkLoraTarget, type LoraTarget, moduleShape } from "../model/names.ts";
import { PRESET_NAMES, type PresetName } from "../model/presets.ts";
import { type LabelledInput, RobertaModel } from "../model/roberta.ts";
import { makeModel } from "../tasks/make_model.ts";
import { gemmAutoOptions } from "../kernels/gemm.ts";
import { BLOCKED_SHARED_GEMM_TILE } from "../kernels/gemm_shared.ts";
import { cachedTextureBytes } from "../kernels/texture_stage.ts";

/** Shape of one benchmarked step, as needed by {@link stepFlops}. */
export interface StepShape {
  /** Batch size B. */
  batch: number;
  /** Sequence length T. */
  seqLen: number;
  /** Hidden size H. */
  hiddenSize: number;
  /** Intermediate size I. */
  intermediateSize: number;
  /** Encoder layers N. */
  numLayers: number;
  /** Classifier outputs C. */
  numLabels: number;
  /** LoRA rank r. */
  r: number;
  /** Adapted modules of every layer. */
  targets: readonly LoraTarget[];
  /**
   * The last layer computes every position (`RobertaModel.lastLayerAllRows`) instead of the B [CLS] rows alone
   * (default false, as the model).
   */
  lastLayerAllRows?: boolean;
}

/**
 * Analytic FLOPs of one forward pass and of one backward pass (see the module documentation for the terms).
 *
 * @example
 * ```ts
 * const { forward, backward } = stepFlops({ batch: 8, seqLen: 128, hiddenSize: 768, intermediateSize: 3072,
 *   numLayers: 12, numLabels: 2, r: 8, targets: ["query", "value"] });
 * ```
 */
export function stepFlops(s: StepShape): { forward: number; backward: number } {
  const B = s.batch, T = s.seqLen, H = s.hiddenSize, I = s.intermediateSize, C = s.numLabels, r = s.r;
  const M = B * T;
  /** One layer's forward and backward; `first`: no input gradient; `clsRows`: only the B [CLS] rows. */
  const layer = (first: boolean, clsRows: boolean) => {
    // R rows of the query, attention-output and feed-forward products; q query positions per sequence
    const R = clsRows ? B : M, q = clsRows ? 1 : T;
    const attn = 2 * B * q * T * H; // one of the q×T products over all heads
    let loraFwd = 0, loraBwd = 0;
    for (const t of s.targets) {
      const { nIn, nOut } = moduleShape(s, t);
      const rows = t === "key" || t === "value" ? M : R;
      const qkv = t === "query" || t === "key" || t === "value";
      loraFwd += 2 * rows * r * (nIn + nOut);
      loraBwd += 2 * rows * r * (2 * nOut + (first && qkv ? 1 : 2) * nIn);
    }
    const forward = 4 * R * H * H + 4 * M * H * H + 4 * R * H * I + 2 * attn + loraFwd;
    const backward = 4 * R * H * I + 2 * R * H * H + 4 * attn + (first ? 0 : 2 * R * H * H + 4 * M * H * H) +
      loraBwd;
    return { forward, backward };
  };
  const head = 2 * B * H * H + 2 * B * H * C;
  let forward = head, backward = 2 * head;
  for (let l = 0; l < s.numLayers; l++) {
    const f = layer(l === 0, !s.lastLayerAllRows && l === s.numLayers - 1);
    forward += f.forward;
    backward += f.backward;
  }
  return { forward, backward };
}

/** The 1-minute load average (Linux), or "n/a". */
function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
  } catch {
    return "n/a";
  }
}

/** Median of a non-empty list. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const MiB = 1024 * 1024;
const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`;

/** Parsed command line of {@link run}. */
interface StepArgs {
  model: string | null;
  preset: PresetName;
  batch: number;
  seq: number;
  steps: number;
  targets: LoraTarget[];
  rank: number;
  torch: boolean;
  /** Where the PyTorch baseline runs: "auto" = CUDA when our adapter is a GPU, else the CPU. */
  torchDevice: "auto" | "cpu" | "cuda";
  batchedTexture: boolean;
  forwardOnly: boolean;
  compareBatchedTexture: boolean;
  compareTileRows: boolean;
  compareTileCols: boolean;
  /** `gemmAutoOptions.tileCols` for the run (`--tile-cols`); null = the default. */
  tileCols: number[] | null;
  compareClsRows: boolean;
  compareSharedTile: boolean;
  /** Bytes for packed frozen weights (`LoadOptions.packedWeightBudget`); null = the model's default. */
  packedWeights: number | null;
}

const STEP_OPTIONS = {
  preset: { type: "string", default: "base" },
  model: { type: "string" },
  batch: { type: "string", default: "8" },
  seq: { type: "string", default: "128" },
  steps: { type: "string", default: "3" },
  targets: { type: "string", default: "query,value" },
  rank: { type: "string", default: "8" },
  "no-torch": { type: "boolean", default: false },
  "torch-device": { type: "string", default: "auto" },
  "no-batched-texture": { type: "boolean", default: false },
  "forward-only": { type: "boolean", default: false },
  "compare-batched-texture": { type: "boolean", default: false },
  "compare-tile-rows": { type: "boolean", default: false },
  "compare-tile-cols": { type: "boolean", default: false },
  "tile-cols": { type: "string" },
  "compare-cls-rows": { type: "boolean", default: false },
  "compare-shared-tile": { type: "boolean", default: false },
  "packed-weights": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

const STEP_USAGE =
  "usage: deno task bench step [--preset tiny|base|large | --model DIR] [--batch B] [--seq L] " +
  "[--steps N] [--targets query,value] [--rank R] [--no-torch] [--torch-device auto|cpu|cuda] " +
  "[--no-batched-texture] [--forward-only] [--packed-weights MIB] [--compare-batched-texture] " +
  "[--compare-tile-rows] [--tile-cols 16,8] [--compare-tile-cols] [--compare-cls-rows] [--compare-shared-tile] " +
  "(see bench/step.ts)";

function parseStepArgs(args: string[]): StepArgs | null {
  let parsed;
  try {
    parsed = parseArgs({ args, options: STEP_OPTIONS });
  } catch (e) {
    throw new Error(`bench step: ${(e as Error).message}\n${STEP_USAGE}`);
  }
  if (parsed.values.help) {
    console.log(STEP_USAGE);
    return null;
  }
  const { values } = parsed;
  if (!(PRESET_NAMES as readonly string[]).includes(values.preset)) {
    throw new Error(`bench step: --preset must be one of ${PRESET_NAMES.join(", ")}, got "${values.preset}"`);
  }
  const posInt = (name: "batch" | "seq" | "steps" | "rank"): number => {
    const v = Number(values[name]);
    if (!Number.isInteger(v) || v < 1) {
      throw new Error(`bench step: --${name} must be a positive integer, got "${values[name]}"`);
    }
    return v;
  };
  const targets = values.targets.split(",").map((t) => t.trim()).filter((t) => t !== "").map(checkLoraTarget);
  if (targets.length === 0) throw new Error("bench step: --targets must name at least one module");
  const torchDevice = values["torch-device"];
  if (torchDevice !== "auto" && torchDevice !== "cpu" && torchDevice !== "cuda") {
    throw new Error(`bench step: --torch-device must be auto, cpu or cuda, got "${torchDevice}"`);
  }
  return {
    model: values.model ?? null,
    preset: values.preset as PresetName,
    batch: posInt("batch"),
    seq: posInt("seq"),
    steps: posInt("steps"),
    targets,
    rank: posInt("rank"),
    torch: !values["no-torch"],
    torchDevice,
    batchedTexture: !values["no-batched-texture"],
    forwardOnly: values["forward-only"],
    compareBatchedTexture: values["compare-batched-texture"],
    compareTileRows: values["compare-tile-rows"],
    compareTileCols: values["compare-tile-cols"],
    tileCols: tileColsArg(values["tile-cols"]),
    compareClsRows: values["compare-cls-rows"],
    compareSharedTile: values["compare-shared-tile"],
    packedWeights: packedMiB(values["packed-weights"]),
  };
}

/** `--tile-cols 16,8`: columns per invocation of the default texture tile, widest first (null when absent). */
function tileColsArg(v: string | undefined): number[] | null {
  if (v === undefined) return null;
  const cols = v.split(",").map(Number);
  if (!cols.length || cols.some((c) => !Number.isInteger(c) || c < 4 || c % 4)) {
    throw new Error(`bench step: --tile-cols must list multiples of 4, widest first (e.g. 16,8), got "${v}"`);
  }
  return cols;
}

/** `--packed-weights MIB` in bytes (null when absent). */
function packedMiB(v: string | undefined): number | null {
  if (v === undefined) return null;
  const mib = Number(v);
  if (!(mib >= 0)) throw new Error(`bench step: --packed-weights must be a number of MiB >= 0, got "${v}"`);
  return mib * 2 ** 20;
}

/** One timed measurement: median seconds and per-step submit/dispatch counts. */
interface Measured {
  seconds: number;
  submits: number;
  dispatches: number;
  /** Sum of the `flops` the kernels reported for the warm-up run (includes element-wise work). */
  kernelFlops: number;
  /** Median host seconds spent recording (step start to `encoder.finish()`, less the time inside submits). */
  encodeSeconds: number;
  /** Median host seconds inside the uniform upload, `encoder.finish()` and `queue.submit` (on llvmpipe the
   * submit call itself runs most of the work, so this is not overhead). */
  finishSeconds: number;
  /** Wall seconds of the untimed warm-up run, and the kernels it built (on llvmpipe each is compiled at its first
   * dispatch: ~2 s for a 16 × 16 texture GEMM unless Mesa's shader cache holds it; bench/NOTES.md entry 44). */
  warmupSeconds: number;
  warmupPipelines: number;
}

/** What {@link runTorchBaseline} returns: the last (JSON) line of bench/torch_step.py. */
export interface TorchResult {
  /** torch version. */
  torch: string;
  /** Threads torch used. */
  threads: number;
  /** "cpu", or the CUDA card's name (`--device cuda`); absent in output of older scripts. */
  device?: string;
  /** Peak bytes torch allocated on the CUDA card (null on the CPU). */
  peak_device_bytes?: number | null;
  /** Median forward seconds (eval, no_grad). */
  forward_s: number;
  /** Median training-step seconds (forward, loss, backward, AdamW); null with `--forward-only`. */
  step_s: number | null;
  /** Peak resident set of the Python process in bytes. */
  peak_rss_bytes: number;
}

/**
 * Runs the PyTorch fp32 baseline (`bench/torch_step.py`) with the same shapes; returns its parsed JSON line, or
 * a string saying why it was skipped (no Python with torch, no CUDA card for `--device cuda`, or the script
 * failed). The interpreters tried, in order: `$FEDLODROP_PYTHON` when set, `/usr/bin/python3` (Debian's
 * python3-torch), then `python3` on the PATH (e.g. a GPU machine's own environment); the first whose torch runs
 * the script is used.
 *
 * @example
 * ```ts
 * const t = await runTorchBaseline(["--preset", "tiny", "--batch", "8", "--seq", "64", "--steps", "3"]);
 * if (typeof t !== "string") console.log(t.step_s);
 * ```
 */
export async function runTorchBaseline(args: string[]): Promise<TorchResult | string> {
  const fromEnv = Deno.env.get("FEDLODROP_PYTHON");
  const reasons: string[] = [];
  for (const py of fromEnv ? [fromEnv] : ["/usr/bin/python3", "python3"]) {
    const r = await torchBaselineWith(py, args);
    if (typeof r !== "string") return r;
    reasons.push(`${py}: ${r}`);
  }
  return reasons.join("; ");
}

/** {@link runTorchBaseline} with one interpreter. */
async function torchBaselineWith(py: string, args: string[]): Promise<TorchResult | string> {
  const script = new URL("./torch_step.py", import.meta.url).pathname;
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(py, { args: [script, ...args], stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    return `cannot run ${py} (${e instanceof Error ? e.message : e}); install python3 and python3-torch`;
  }
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
    return `bench/torch_step.py failed (exit ${out.code}): ${err}`;
  }
  const lines = text.split("\n");
  let last: Record<string, unknown>;
  try {
    last = JSON.parse(lines[lines.length - 1]);
  } catch {
    return `bench/torch_step.py printed no JSON last line: ${JSON.stringify(lines[lines.length - 1])}`;
  }
  if (typeof last.skipped === "string") {
    return `${last.skipped}${
      /torch not importable/.test(String(last.skipped)) ? " (apt-get install python3-torch)" : ""
    }`;
  }
  for (const f of ["forward_s", "step_s", "peak_rss_bytes", "threads"]) {
    if (f === "step_s" && last[f] === null) continue;
    if (typeof last[f] !== "number" || !(last[f] as number > 0)) {
      return `bench/torch_step.py: JSON field "${f}" missing or not a positive number in ${lines.at(-1)}`;
    }
  }
  return last as unknown as TorchResult;
}

/** Timings of {@link alternateSteps}: medians in ms of the two settings, their ratio, and whether losses agree. */
interface Alternation {
  first: string;
  second: string;
  ratio: string;
  same: string;
}

/**
 * Training steps alternating two settings of a kernel choice (`apply(true)`, then `apply(false)`), so that both
 * see the same machine load; one untimed step of each first (pipeline compiles), `apply(true)` left in place at
 * the end. lr 0 and the same dropout masks (streams from `stream0`) for both: the same computation done two ways,
 * so the losses are compared bit for bit.
 */
async function alternateSteps(
  model: RobertaModel,
  input: LabelledInput,
  steps: number,
  stream0: number,
  apply: (first: boolean) => void,
): Promise<Alternation> {
  const t: [number[], number[]] = [[], []];
  const losses: [number[], number[]] = [[], []];
  for (let i = 0; i <= steps; i++) {
    for (const w of [0, 1] as const) {
      apply(w === 0);
      const t0 = performance.now();
      losses[w].push(
        await model.trainStep(input, { lr: 0, step: steps + 2 + i, dropoutStream: stream0 + i }),
      );
      if (i > 0) t[w].push((performance.now() - t0) / 1000);
    }
  }
  apply(true);
  const f = median(t[0]), g = median(t[1]);
  return {
    first: `${(f * 1000).toFixed(1)} ms`,
    second: `${(g * 1000).toFixed(1)} ms`,
    ratio: `${(g / f).toFixed(2)}x`,
    same: losses[0].every((v, i) => Object.is(v, losses[1][i])) ? "identical" : "DIFFER",
  };
}

/**
 * Runs the benchmark (see the module documentation) and prints one line per measurement.
 *
 * @example
 * ```ts
 * await run(["--preset", "tiny", "--batch", "8", "--seq", "64"]);
 * ```
 */
export async function run(args: string[]): Promise<void> {
  const a = parseStepArgs(args);
  if (a === null) return;
  gemmAutoOptions.batchedTexture = a.batchedTexture;
  if (a.tileCols) gemmAutoOptions.tileCols = a.tileCols;
  let dir = a.model;
  if (dir === null) {
    dir = `runs/models/${a.preset}-seed0-labels2`;
    if (!(await pathExists(`${dir}/model.safetensors`))) {
      console.log(`bench step: writing the random ${a.preset} model to ${dir} (once)…`);
      const t0 = performance.now();
      await makeModel({ preset: a.preset, out: dir, seed: 0, labels: 2 });
      console.log(`bench step: model written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  }

  let peakRss = Deno.memoryUsage().rss;
  const sample = () => {
    peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
  };
  const sampler = setInterval(sample, 20);
  try {
    const tLoad = performance.now();
    const model = await RobertaModel.load(dir, {
      numLabels: 2,
      lora: { r: a.rank, alpha: 2 * a.rank, targets: a.targets },
      seed: 0,
      packedWeightBudget: a.packedWeights ?? undefined,
    });
    const loadS = (performance.now() - tLoad) / 1000;
    sample();
    // The passes' own peak is measured from here; loading's is reported beside it.
    const loadPeakRss = peakRss;
    peakRss = Deno.memoryUsage().rss;
    const cfg = model.config;
    const B = a.batch, T = a.seq;

    const rnd = new KeyedRandom([0, Purpose.data, 0x57e9]);
    const inputIds = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) inputIds[b * T + t] = t === 0 ? 0 : 3 + rnd.int(cfg.vocabSize - 3);
    }
    const labels = Array.from({ length: B }, () => rnd.int(2));
    const input = { inputIds, batch: B, seqLen: T };

    const flops = stepFlops({
      batch: B,
      seqLen: T,
      hiddenSize: cfg.hiddenSize,
      intermediateSize: cfg.intermediateSize,
      numLayers: cfg.numLayers,
      numLabels: 2,
      r: a.rank,
      targets: model.lora.targets,
      lastLayerAllRows: model.lastLayerAllRows,
    });

    console.log(
      `bench step: ${dir} (H ${cfg.hiddenSize}, I ${cfg.intermediateSize}, ${cfg.numLayers} layers, ${cfg.numHeads} heads), ` +
        `batch ${B} × seq ${T}, LoRA r ${a.rank} on ${
          model.lora.targets.join(",")
        }, ${a.steps} timed steps after 1 warm-up; ` +
        `loaded in ${loadS.toFixed(1)} s on ${model.gpu.isCpu ? "a CPU adapter" : "a GPU adapter"}` +
        `${a.batchedTexture ? "" : " (--no-batched-texture)"}; load average ${loadAverage()}`,
    );

    const rec = model.recorder;
    const measure = async (body: (i: number) => Promise<unknown>): Promise<Measured> => {
      // warm-up: compiles pipelines, allocates the activation plan; an observer sums the kernels' own flops
      let kernelFlops = 0;
      const counter: DispatchObserver = {
        onDispatch: (d) => {
          kernelFlops += d.flops ?? 0;
          return undefined;
        },
        beforeFinish: () => {},
        afterSubmit: () => {},
      };
      const before = rec.observer;
      rec.observer = counter;
      const w0 = performance.now(), p0 = model.gpu.pipelineCount;
      try {
        await body(0);
      } finally {
        rec.observer = before;
      }
      const warmupSeconds = (performance.now() - w0) / 1000, warmupPipelines = model.gpu.pipelineCount - p0;
      sample();
      const times: number[] = [], submits: number[] = [], dispatches: number[] = [], encodes: number[] = [];
      const finishes: number[] = [];
      // Host time up to the end of the last submit: the observer only reads the clock (no queries, no work).
      // Recording = from the step's start (or the previous submit's end) to the command buffer's finish.
      let segStart = 0, finishStart = 0, recordMs = 0, submitMs = 0;
      const clock: DispatchObserver = {
        onDispatch: () => undefined,
        beforeFinish: () => {
          finishStart = performance.now();
          recordMs += finishStart - segStart;
        },
        afterSubmit: () => {
          segStart = performance.now();
          submitMs += segStart - finishStart;
        },
      };
      for (let i = 1; i <= a.steps; i++) {
        const s0 = rec.submitCount, d0 = rec.dispatchCount;
        rec.observer = clock;
        const t0 = performance.now();
        segStart = t0;
        recordMs = submitMs = 0;
        try {
          await body(i);
        } finally {
          rec.observer = before;
        }
        const t1 = performance.now();
        times.push((t1 - t0) / 1000);
        encodes.push(recordMs / 1000);
        finishes.push(submitMs / 1000);
        submits.push(rec.submitCount - s0);
        dispatches.push(rec.dispatchCount - d0);
        sample();
      }
      return {
        seconds: median(times),
        submits: median(submits),
        dispatches: median(dispatches),
        kernelFlops,
        encodeSeconds: median(encodes),
        finishSeconds: median(finishes),
        warmupSeconds,
        warmupPipelines,
      };
    };

    const line = (what: string, m: Measured, f: number) =>
      console.log(
        `${what.padEnd(10)} median ${(m.seconds * 1000).toFixed(1).padStart(9)} ms  ${
          (B * T / m.seconds).toFixed(0).padStart(8)
        } tokens/s  ${(f / 1e9).toPrecision(3).padStart(8)} GFLOP  ${
          (f / m.seconds / 1e9).toPrecision(3).padStart(8)
        } GFLOP/s  ${String(m.submits).padStart(3)} submits  ${
          String(m.dispatches).padStart(5)
        } dispatches  (kernels report ${(m.kernelFlops / 1e9).toPrecision(3)} GFLOP; host encode ${
          (m.encodeSeconds * 1000).toFixed(1)
        } ms = ${(100 * m.encodeSeconds / m.seconds).toFixed(1)} % of the step; finish+submit call ${
          (m.finishSeconds * 1000).toFixed(1)
        } ms; warm-up ${(m.warmupSeconds * 1000).toFixed(0)} ms, ${m.warmupPipelines} kernels built)`,
      );

    const fwd = await measure(async () => {
      const logits = await model.forward(input);
      if (!logits.every(Number.isFinite)) throw new Error("bench step: forward produced non-finite logits");
    });
    line("forward", fwd, flops.forward);
    if (a.compareBatchedTexture) {
      // Forward passes alternating the batched products' kernel family (buffer-fed, texture-fed), so that both
      // see the same machine load; one untimed pass of each first (pipeline compiles).
      const t: Record<"buffer" | "texture", number[]> = { buffer: [], texture: [] };
      for (let i = 0; i <= a.steps; i++) {
        for (const which of ["buffer", "texture"] as const) {
          gemmAutoOptions.batchedTexture = which === "texture";
          const t0 = performance.now();
          await model.forward(input);
          if (i > 0) t[which].push((performance.now() - t0) / 1000);
        }
      }
      gemmAutoOptions.batchedTexture = a.batchedTexture;
      const b = median(t.buffer), x = median(t.texture);
      console.log(
        `batched   forward with the attention products on the buffer-fed kernels ${
          (b * 1000).toFixed(1)
        } ms, ` +
          `texture-fed ${(x * 1000).toFixed(1)} ms (${
            (b / x).toFixed(2)
          }x; alternating, median of ${a.steps}; ` +
          `load ${loadAverage()})`,
      );
    }

    let lastLoss = NaN;
    const step = a.forwardOnly ? null : await measure(async (i) => {
      lastLoss = await model.trainStep({ ...input, labels }, { lr: 1e-4, step: i + 1 });
      if (!Number.isFinite(lastLoss)) {
        throw new Error(`bench step: training step ${i + 1} gave loss ${lastLoss}`);
      }
    });
    if (step) line("train step", step, flops.forward + flops.backward);
    if (a.compareTileRows && !a.forwardOnly) {
      // The texture tile's workgroup height fitted to m (the default) against always 8 invocations high.
      const r = await alternateSteps(model, { ...input, labels }, a.steps, 1000, (fitted) => {
        gemmAutoOptions.fitTileRows = fitted;
      });
      console.log(
        `tile rows train step with workgroups fitted to each product's rows ${r.first}, 8 invocations high ` +
          `${r.second} (${r.ratio}; alternating, median of ${a.steps}; losses ${r.same}; load ${loadAverage()})`,
      );
    }
    if (a.compareTileCols && !a.forwardOnly) {
      // The default texture tile with the run's columns per invocation against 8 columns everywhere.
      const cols = [...gemmAutoOptions.tileCols];
      const r = await alternateSteps(model, { ...input, labels }, a.steps, 3000, (wide) => {
        gemmAutoOptions.tileCols = wide ? cols : [8];
      });
      const listed = cols.join(",");
      console.log(
        `tile cols train step with ${listed} columns per invocation ${r.first}, 8 columns ${r.second} ` +
          `(${r.ratio}; alternating, median of ${a.steps}; losses ${r.same}; load ${loadAverage()})`,
      );
    }
    if (a.compareSharedTile && !a.forwardOnly) {
      if (!model.gpu.isCpu) {
        // GPU adapters: the blocked workgroup-memory kernel against the default (strided) one.
        const before = gemmAutoOptions.sharedTile;
        const r = await alternateSteps(model, { ...input, labels }, a.steps, 4000, (blocked) => {
          gemmAutoOptions.sharedTile = blocked ? BLOCKED_SHARED_GEMM_TILE : before;
        });
        gemmAutoOptions.sharedTile = before;
        console.log(
          `shared tile train step with the blocked 128×128 workgroup-memory GEMM ${r.first}, the default ` +
            `${before.wx * before.tn}×${
              before.wy * before.tm
            } ${r.second} (${r.ratio}; alternating, median of ` +
            `${a.steps}; losses ${r.same})`,
        );
      } else {
        console.log("shared tile skipped: CPU adapters do not take the workgroup-memory GEMM");
      }
    }
    if (a.compareClsRows) {
      // Forward passes and training steps alternating the last layer's rows ([CLS] alone, all), so that both see
      // the same machine load; one untimed round of each first. lr 0 and the same dropout masks for both: the
      // logits and losses are checked to be equal.
      type Rows = "cls" | "all";
      const t = {
        fwd: { cls: [] as number[], all: [] as number[] },
        step: { cls: [] as number[], all: [] as number[] },
      };
      const out: Record<Rows, number[]> = { cls: [], all: [] };
      for (let i = 0; i <= a.steps; i++) {
        for (const which of ["cls", "all"] as const) {
          model.lastLayerAllRows = which === "all";
          let t0 = performance.now();
          out[which].push(...await model.forward(input));
          if (i > 0) t.fwd[which].push((performance.now() - t0) / 1000);
          if (a.forwardOnly) continue;
          t0 = performance.now();
          out[which].push(
            await model.trainStep({ ...input, labels }, {
              lr: 0,
              step: a.steps + 2 + i,
              dropoutStream: 2000 + i,
            }),
          );
          if (i > 0) t.step[which].push((performance.now() - t0) / 1000);
        }
      }
      model.lastLayerAllRows = false;
      const same = out.cls.every((v, i) => Object.is(v, out.all[i]));
      const maxRel = Math.max(
        ...out.cls.map((v, i) => Math.abs(v - out.all[i]) / Math.max(1e-6, Math.abs(out.all[i]))),
      );
      const ratio = (k: "fwd" | "step") => {
        const c = median(t[k].cls), l = median(t[k].all);
        return `${(c * 1000).toFixed(1)} ms against all rows ${(l * 1000).toFixed(1)} ms (${
          (l / c).toFixed(2)
        }x)`;
      };
      console.log(
        `cls rows  last layer on the [CLS] rows alone: forward ${ratio("fwd")}` +
          (a.forwardOnly ? "" : `, train step ${ratio("step")}`) +
          `; alternating, median of ${a.steps}; logits and losses ${
            same ? "identical" : `DIFFER (largest relative difference ${maxRel.toExponential(2)})`
          }; load ${loadAverage()}`,
      );
    }
    console.log(
      `flops      forward ${(flops.forward / 1e9).toPrecision(3)} GFLOP, backward ${
        (flops.backward / 1e9).toPrecision(3)
      } GFLOP (backward/forward ${(flops.backward / flops.forward).toFixed(2)}; frozen weights get no dW); ${
        step ? `last loss ${lastLoss.toFixed(4)}` : "--forward-only: no step"
      }`,
    );

    sample();
    console.log(`load       1-minute load average after the measurements: ${loadAverage()}`);
    const weights = model.base.bytes, acts = model.activationBytesByPlan, adapter = model.adapterBytes;
    const held = weights + acts.training + acts.inference + adapter;
    const packed = model.packedWeights;
    const staging = cachedTextureBytes(model.gpu);
    console.log(
      `memory     peak RSS ${mib(peakRss)} during the passes (${
        mib(loadPeakRss)
      } while loading); model holds ${mib(held)} = weights ${mib(weights)} + activations ${
        mib(acts.training)
      } (training plan) + ${
        mib(acts.inference)
      } (inference plan of the forward passes) + adapter/grads/optimizer ${mib(adapter)}; RSS / held ${
        (peakRss / held).toFixed(2)
      }; packed frozen weights (a cache, not counted as held) ${mib(packed.bytes)} of ${
        mib(packed.budget)
      }, ${packed.hits} products read them, ${packed.packs} packings; staging and packing textures ${
        mib(staging.live)
      } (+ ${mib(staging.replaced)} replaced by larger ones)`,
    );

    if (!a.torch) {
      console.log("vs PyTorch  skipped (--no-torch)");
    } else if (a.model !== null) {
      console.log("vs PyTorch  skipped: --model given; bench/torch_step.py builds presets only");
    } else {
      const t = await runTorchBaseline([
        "--preset",
        a.preset,
        "--batch",
        String(B),
        "--seq",
        String(T),
        "--steps",
        String(a.steps),
        "--targets",
        model.lora.targets.join(","),
        "--rank",
        String(a.rank),
        "--device",
        a.torchDevice === "auto" ? (model.gpu.isCpu ? "cpu" : "cuda") : a.torchDevice,
        ...(step ? [] : ["--forward-only"]),
      ]);
      if (typeof t === "string") {
        console.log(`vs PyTorch  skipped: ${t}`);
      } else {
        const tStep = t.step_s === null
          ? ""
          : `, train step ${(t.step_s * 1000).toFixed(1)} ms (${(B * T / t.step_s).toFixed(0)} tokens/s)`;
        console.log(
          `torch      forward ${(t.forward_s * 1000).toFixed(1)} ms (${
            (B * T / t.forward_s).toFixed(0)
          } tokens/s)${tStep}; torch ${t.torch} fp32, ${
            t.device && t.device !== "cpu" ? `${t.device} (TF32 off)` : `${t.threads} threads`
          }, peak RSS ${mib(t.peak_rss_bytes)}${
            t.peak_device_bytes ? `, peak CUDA allocation ${mib(t.peak_device_bytes)}` : ""
          }`,
        );
        const stepRatio = step && t.step_s !== null
          ? `, train step ${(t.step_s / step.seconds).toFixed(2)}x`
          : "";
        console.log(
          `vs PyTorch fp32 (same machine, same run): forward ${
            (t.forward_s / fwd.seconds).toFixed(2)
          }x${stepRatio} tokens/s`,
        );
      }
    }
  } finally {
    clearInterval(sampler);
  }
}
