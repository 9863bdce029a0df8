/**
 * RobertaForSequenceClassification (and BertForSequenceClassification, chosen by the config's `model_type`)
 * with peft LoRA and FedLoDrop masks, entirely on the WebGPU device: embeddings, post-LN encoder layers,
 * classification head, loss, a hand-written backward pass (gradients only for LoRA A/B and the head) and AdamW.
 * The two families differ only in the position ids (RoBERTa counts real tokens after the padding id, BERT
 * counts from 0), the token types (BERT: 1 on the second segment) and the head (RoBERTa: dropout → dense →
 * tanh → dropout → out_proj, all trainable; BERT: the frozen pooler dense → tanh → dropout → classifier). The
 * last encoder layer computes only the [CLS] rows, which are all the head reads, with the same results as the
 * whole layer ({@link RobertaModel.lastLayerAllRows}). One training step is recorded into one command buffer and
 * the only readback is the per-example loss.
 * @module
 */
import { adamw } from "../kernels/adamw.ts";
import { gelu, geluBackward, tanhBackward, tanhForward } from "../kernels/activation.ts";
import { attentionSoftmax, attentionSoftmaxBackward } from "../kernels/attention_softmax.ts";
import { getGpu, type Gpu } from "../kernels/device.ts";
import { dropout, dropoutBackward, type RowsOf } from "../kernels/dropout.ts";
import { add, addInPlace, sumRows } from "../kernels/elementwise.ts";
import { embeddingGather } from "../kernels/embedding.ts";
import { gemm } from "../kernels/gemm.ts";
import { layerNorm, layerNormBackward } from "../kernels/layernorm.ts";
import { loraBackward, loraForward } from "../kernels/lora.ts";
import { crossEntropy, meanSquaredError } from "../kernels/loss.ts";
import { Recorder } from "../kernels/recorder.ts";
import { Purpose } from "../kernels/rng.ts";
import { ActivationPlan, type PlanKind } from "./activation_plan.ts";
import { PackedWeightCache } from "../kernels/packed_weights.ts";
import { saveAdapter } from "./adapter_export.ts";
import { type BaseWeights, loadBaseWeights, moduleWeight } from "./base_weights.ts";
import { type EncoderConfig, readConfig } from "./config.ts";
import {
  headLayout,
  LORA_TARGETS,
  loraNames,
  loraScale,
  type LoraSettings,
  type LoraTarget,
  modulePath,
  moduleShape,
} from "./names.ts";
import { initAdapter } from "./reference.ts";
import { SafetensorsFile } from "./safetensors.ts";

/** FedLoDrop masks per adapted module path: `a` keeps columns of A ([nIn]), `b` keeps rows of B ([nOut]). */
export type ModuleMasks = Map<string, { a: Float32Array; b: Float32Array }>;

/** One batch of token ids (row-major [batch, seqLen], padded with the config's pad id). */
export interface ModelInput {
  inputIds: Int32Array;
  batch: number;
  seqLen: number;
  /** Token type (segment) ids, same layout as inputIds (default all 0; BERT pairs use 1 on the second). */
  typeIds?: Int32Array;
}

/** A batch with labels: class ids, or float targets when the model has one output (regression). */
export interface LabelledInput extends ModelInput {
  labels: ArrayLike<number>;
}

/** Options of `RobertaModel.load`. */
export interface LoadOptions {
  /** Number of outputs of the head (1 = regression with MSE). */
  numLabels: number;
  /** LoRA settings (peft semantics). */
  lora: LoraSettings;
  /** Seed of the adapter initialisation and of every dropout mask. */
  seed?: number;
  /** Override the dropout rates of the config and of LoRA (e.g. all 0 for comparisons). */
  dropout?: { hidden?: number; attention?: number; lora?: number };
  /** Print the adapter in use on stderr. */
  verbose?: boolean;
  /**
   * Bytes of textures for keeping the frozen encoder weights packed for the texture-fed GEMM of CPU adapters
   * (`kernels/packed_weights.ts`; default {@link DEFAULT_PACKED_WEIGHT_BUDGET}; 0 packs them for every product).
   * GPUs never use them.
   */
  packedWeightBudget?: number;
}

/**
 * Default {@link LoadOptions.packedWeightBudget}: 128 MiB, which holds both packings (forward and backward) of all
 * of MiniLM-L6's encoder weights (85 MB) and part of roberta-base's (680 MB for all).
 */
export const DEFAULT_PACKED_WEIGHT_BUDGET = 128 * 2 ** 20;

/** Options of one pass. */
export interface PassOptions {
  /** Training mode: dropouts on (default false: evaluation). */
  train?: boolean;
  /** FedLoDrop masks; modules not in the map keep every row and column. */
  masks?: ModuleMasks;
  /** Selects the dropout masks of this pass (e.g. a hash of round, device and step). */
  dropoutStream?: number;
}

/** Optimiser settings of one training step (torch AdamW semantics). */
export interface StepOptions extends PassOptions {
  lr: number;
  /** 1-based step count since the optimiser state was reset (bias correction). */
  step: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** FFA-LoRA: keep every A fixed. */
  freezeA?: boolean;
}

interface Trainable {
  name: string;
  size: number;
  param: GPUBuffer;
  grad: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
  /** Per-element mask for AdamW (LoRA tensors only): 0 where the row/column is dropped. */
  elemMask?: GPUBuffer;
}

interface AdaptedModule {
  path: string;
  target: LoraTarget;
  layer: number;
  nIn: number;
  nOut: number;
  a: Trainable;
  b: Trainable;
  maskA: GPUBuffer;
  maskB: GPUBuffer;
  masked: boolean;
}

const SITE = { emb: 0, attnProbs: 1, attnOut: 2, ffnOut: 3, cls: 4, pooled: 5, lora: 8 } as const;
const HEAD_KEY = { denseWeight: "denseW", denseBias: "denseB", outWeight: "outW", outBias: "outB" } as const;
const TARGET_INDEX: Record<LoraTarget, number> = {
  query: 0,
  key: 1,
  value: 2,
  "attention.output.dense": 3,
  "intermediate.dense": 4,
  "output.dense": 5,
};

/**
 * A RoBERTa sequence classifier with LoRA on the device.
 *
 * @example
 * ```ts
 * const model = await RobertaModel.load("models/tiny", { numLabels: 2, lora: { r: 8, alpha: 16, targets: ["query", "value"] } });
 * const logits = await model.forward({ inputIds, batch: 2, seqLen: 16 });
 * const { loss, grads } = await model.lossAndGrads({ inputIds, batch: 2, seqLen: 16, labels: [0, 1] });
 * ```
 */
export class RobertaModel {
  readonly gpu: Gpu;
  readonly config: EncoderConfig;
  readonly numLabels: number;
  readonly lora: LoraSettings;
  readonly scale: number;
  readonly seed: number;
  readonly dir: string;
  readonly base: BaseWeights;
  readonly modules: AdaptedModule[];
  /** The trainable head: RoBERTa's dense + out_proj, or BERT's classifier (outW/outB; its pooler is frozen). */
  readonly head: { denseW?: Trainable; denseB?: Trainable; outW: Trainable; outB: Trainable };
  readonly rates: { hidden: number; attention: number; lora: number; classifier: number };
  /**
   * Compute every position of the last encoder layer, as Hugging Face does. Default false: that layer computes
   * only the [CLS] rows, the only ones the head reads (its keys and values still cover every position), which
   * saves most of one layer's work. Both give the same logits, losses and gradients (the rows computed alone
   * keep the whole pass's dropout masks; tested); `true` is for comparisons (`deno task bench step
   * --compare-cls-rows`).
   */
  lastLayerAllRows = false;
  /** The plan of training steps (saved activations of every layer). */
  #plan: ActivationPlan | null = null;
  /** The plan of forward passes that no training plan can hold (one layer's activations, reused). */
  #evalPlan: ActivationPlan | null = null;
  #rec: Recorder;
  #stream = 0;
  /** Packed textures of the frozen encoder weights (texture-fed GEMM on CPU adapters). */
  #packed: PackedWeightCache;

  private constructor(
    gpu: Gpu,
    dir: string,
    config: EncoderConfig,
    base: BaseWeights,
    opts: LoadOptions,
  ) {
    this.gpu = gpu;
    this.dir = dir;
    this.config = config;
    this.base = base;
    this.numLabels = opts.numLabels;
    // Targets in the canonical order, so module order (and the mask streams keyed by it) never depends on
    // the order a user listed them in.
    this.lora = { ...opts.lora, targets: LORA_TARGETS.filter((t) => opts.lora.targets.includes(t)) };
    this.scale = loraScale(opts.lora);
    this.seed = (opts.seed ?? 0) >>> 0;
    const classifierDropout = typeof config.raw.classifier_dropout === "number"
      ? config.raw.classifier_dropout as number
      : config.hiddenDropout;
    this.rates = {
      hidden: opts.dropout?.hidden ?? config.hiddenDropout,
      attention: opts.dropout?.attention ?? config.attentionDropout,
      lora: opts.dropout?.lora ?? opts.lora.dropout ?? 0,
      classifier: opts.dropout?.hidden ?? classifierDropout,
    };
    this.#rec = new Recorder(gpu);
    this.#packed = new PackedWeightCache(gpu, opts.packedWeightBudget ?? DEFAULT_PACKED_WEIGHT_BUDGET);
    const init = initAdapter(config, opts.numLabels, this.lora, this.seed);
    const H = config.hiddenSize, r = this.lora.r;
    const trainable = (name: string, data: Float32Array, masked: boolean): Trainable => ({
      name,
      size: data.length,
      param: gpu.upload(data, name),
      grad: gpu.buffer(data.byteLength, `${name}.grad`),
      m: gpu.buffer(data.byteLength, `${name}.m`),
      v: gpu.buffer(data.byteLength, `${name}.v`),
      elemMask: masked ? gpu.upload(new Float32Array(data.length).fill(1), `${name}.mask`) : undefined,
    });
    this.modules = [];
    for (let layer = 0; layer < config.numLayers; layer++) {
      for (const target of this.lora.targets) {
        const path = modulePath(layer, target, config.modelType);
        const { nIn, nOut } = moduleShape(config, target);
        const names = loraNames(path);
        this.modules.push({
          path,
          target,
          layer,
          nIn,
          nOut,
          a: trainable(names.a, mustGet(init, names.a, r * nIn), true),
          b: trainable(names.b, mustGet(init, names.b, nOut * r), true),
          maskA: gpu.upload(new Float32Array(nIn).fill(1), `${path}.maskA`),
          maskB: gpu.upload(new Float32Array(nOut).fill(1), `${path}.maskB`),
          masked: false,
        });
      }
    }
    const L = opts.numLabels;
    const headInit = (peftName: string, hfName: string, size: number) => {
      const fromCheckpoint = base.head.get(hfName);
      if (fromCheckpoint && fromCheckpoint.length === size) return fromCheckpoint;
      if (fromCheckpoint) {
        console.error(
          `fedlodrop: ${hfName} in the checkpoint has ${fromCheckpoint.length} values, not ${size} (numLabels ${L}); initialising it fresh`,
        );
      }
      return mustGet(init, peftName, size);
    };
    const head: Partial<RobertaModel["head"]> = {};
    for (const t of headLayout(config.modelType, H, L)) {
      const size = t.shape.reduce((a, b) => a * b, 1);
      head[HEAD_KEY[t.role]] = trainable(t.name, headInit(t.name, t.hfName, size), false);
    }
    this.head = head as RobertaModel["head"];
  }

  /** Loads `dir/config.json` and `dir/model.safetensors` and initialises the adapter from the seed. */
  static async load(dir: string, opts: LoadOptions): Promise<RobertaModel> {
    if (!(opts.numLabels >= 1) || !Number.isInteger(opts.numLabels)) {
      throw new Error(`numLabels must be a positive integer, got ${opts.numLabels}`);
    }
    if (!(opts.lora.r >= 1) || !Number.isInteger(opts.lora.r)) {
      throw new Error(`lora.r must be a positive integer`);
    }
    if (opts.lora.targets.length === 0) throw new Error("lora.targets must name at least one module");
    const config = await readConfig(dir);
    const gpu = await getGpu({ verbose: opts.verbose });
    const file = await SafetensorsFile.open(`${dir}/model.safetensors`);
    try {
      const base = await loadBaseWeights(gpu, file, config);
      return new RobertaModel(gpu, dir, config, base, opts);
    } finally {
      file.close();
    }
  }

  /** Every trainable tensor, LoRA A/B per module then the head, in a fixed order. */
  get trainables(): Trainable[] {
    const h = this.head;
    return [
      ...this.modules.flatMap((m) => [m.a, m.b]),
      ...[h.denseW, h.denseB, h.outW, h.outB].filter((t) => !!t),
    ];
  }

  /** Bytes of device memory held by the adapter, its gradients and optimiser state. */
  get adapterBytes(): number {
    return this.trainables.reduce((s, t) => s + 4 * t.size * (t.elemMask ? 5 : 4), 0);
  }

  /** Bytes held by the activation plans (training and inference; 0 before the first pass). */
  get activationBytes(): number {
    return (this.#plan?.bytes ?? 0) + (this.#evalPlan?.bytes ?? 0);
  }

  /** {@link activationBytes} by plan: the training plan (every layer's saved activations) and the inference plan. */
  get activationBytesByPlan(): { training: number; inference: number } {
    return { training: this.#plan?.bytes ?? 0, inference: this.#evalPlan?.bytes ?? 0 };
  }

  /** Dropout rate on the first token before the head's dense layer (RoBERTa only; BERT's pooler has none). */
  get #clsDropout(): number {
    return this.config.modelType === "bert" ? 0 : this.rates.classifier;
  }

  /** The head's dense layer before tanh: RoBERTa's trainable one, or BERT's frozen pooler. */
  get #headDense(): { w: GPUBuffer; b: GPUBuffer; frozen: boolean } {
    const h = this.head, p = this.base.pooler;
    if (h.denseW && h.denseB) return { w: h.denseW.param, b: h.denseB.param, frozen: false };
    if (!p) throw new Error("model has neither a trainable head dense layer nor a pooler");
    return { w: p.weight, b: p.bias, frozen: true };
  }

  /** The recorder (for attaching a profiler). */
  get recorder(): Recorder {
    return this.#rec;
  }

  /**
   * The plan for a pass of `kind`: a forward pass uses the training plan when that one holds the batch (no extra
   * memory), otherwise an inference plan; a training step needs the training plan. Each grows to the union of
   * the shapes it has served.
   */
  #ensurePlan(batch: number, seqLen: number, kind: PlanKind): ActivationPlan {
    const heads = this.config.numHeads;
    if (this.#plan?.fits(batch, seqLen, heads)) return this.#plan;
    if (kind === "inference" && this.#evalPlan?.fits(batch, seqLen, heads, kind)) return this.#evalPlan;
    const current = kind === "training" ? this.#plan : this.#evalPlan;
    const old = current?.shape;
    current?.destroy();
    const plan = new ActivationPlan(this.gpu, {
      rows: Math.max(batch * seqLen, old?.rows ?? 0),
      batch: Math.max(batch, old?.batch ?? 0),
      attention: Math.max(batch * heads * seqLen * seqLen, old?.attention ?? 0),
      hidden: this.config.hiddenSize,
      intermediate: this.config.intermediateSize,
      layers: this.config.numLayers,
      numLabels: this.numLabels,
      loraTargets: this.lora.targets,
      r: this.lora.r,
    }, kind);
    if (kind === "training") this.#plan = plan;
    else this.#evalPlan = plan;
    return plan;
  }

  #writeInputs(plan: ActivationPlan, input: ModelInput, labels?: ArrayLike<number>): void {
    const { inputIds, batch, seqLen } = input;
    const cfg = this.config;
    if (!(batch >= 1 && seqLen >= 1) || inputIds.length !== batch * seqLen) {
      throw new Error(`inputIds has ${inputIds.length} ids, expected batch ${batch} × seqLen ${seqLen}`);
    }
    const bert = cfg.modelType === "bert";
    const maxLen = bert ? cfg.maxPositionEmbeddings : cfg.maxPositionEmbeddings - cfg.padTokenId - 1;
    if (seqLen > maxLen) {
      throw new Error(
        `seqLen ${seqLen} exceeds the model's ${maxLen} positions (max_position_embeddings${
          bert ? "" : " - pad - 1"
        })`,
      );
    }
    const types = input.typeIds ?? new Int32Array(batch * seqLen);
    if (types.length !== batch * seqLen) {
      throw new Error(`typeIds has ${types.length} ids, expected batch ${batch} × seqLen ${seqLen}`);
    }
    for (let i = 0; i < types.length; i++) {
      if (!(types[i] >= 0 && types[i] < cfg.typeVocabSize)) {
        throw new Error(`typeIds[${i}] = ${types[i]} is outside [0, type_vocab_size ${cfg.typeVocabSize})`);
      }
    }
    const pos = new Int32Array(batch * seqLen);
    const keyMask = new Float32Array(batch * seqLen);
    const pad = cfg.padTokenId;
    for (let b = 0; b < batch; b++) {
      let c = 0;
      for (let t = 0; t < seqLen; t++) {
        const id = inputIds[b * seqLen + t];
        if (!(id >= 0 && id < cfg.vocabSize)) {
          throw new Error(
            `inputIds[${b * seqLen + t}] = ${id} is outside the vocabulary [0, ${cfg.vocabSize})`,
          );
        }
        const real = id !== pad ? 1 : 0;
        c += real;
        pos[b * seqLen + t] = bert ? t : c * real + pad;
        keyMask[b * seqLen + t] = real;
      }
    }
    this.gpu.write(plan.inputIds, inputIds);
    this.gpu.write(plan.positionIds, pos);
    this.gpu.write(plan.typeIds, types);
    this.gpu.write(plan.keyMask, keyMask);
    if (labels) {
      if (labels.length !== batch) throw new Error(`labels has ${labels.length} entries, expected ${batch}`);
      if (this.numLabels === 1) this.gpu.write(plan.labels, Float32Array.from(labels));
      else {
        const ids = Int32Array.from(labels);
        for (let i = 0; i < ids.length; i++) {
          if (!(ids[i] >= 0 && ids[i] < this.numLabels)) {
            throw new Error(`label ${labels[i]} of example ${i} is not a class id in [0, ${this.numLabels})`);
          }
        }
        this.gpu.write(plan.labels, ids);
      }
    }
  }

  /** Uploads FedLoDrop masks (absent modules: all ones) to the LoRA kernels and AdamW's element masks. */
  setMasks(masks?: ModuleMasks): void {
    const r = this.lora.r;
    for (const m of this.modules) {
      const mk = masks?.get(m.path);
      if (!mk && !m.masked) continue;
      const a = mk?.a ?? new Float32Array(m.nIn).fill(1);
      const b = mk?.b ?? new Float32Array(m.nOut).fill(1);
      if (a.length !== m.nIn || b.length !== m.nOut) {
        throw new Error(
          `mask of ${m.path}: expected a [${m.nIn}] and b [${m.nOut}], got [${a.length}] and [${b.length}]`,
        );
      }
      this.gpu.write(m.maskA, a);
      this.gpu.write(m.maskB, b);
      const ea = new Float32Array(r * m.nIn);
      for (let j = 0; j < r; j++) ea.set(a, j * m.nIn);
      const eb = new Float32Array(m.nOut * r);
      for (let o = 0; o < m.nOut; o++) eb.fill(b[o], o * r, o * r + r);
      this.gpu.write(m.a.elemMask!, ea);
      this.gpu.write(m.b.elemMask!, eb);
      m.masked = mk !== undefined;
    }
  }

  #key(stream: number, layer: number, site: number): [number, number, number, number] {
    return [this.seed, stream >>> 0, Purpose.dropout, (layer << 8) | site];
  }

  /** y = x·wᵀ + bias; `frozen`: w is a base weight, whose packed texture may be kept ({@link #packed}). */
  #linear(
    x: GPUBuffer,
    w: GPUBuffer,
    bias: GPUBuffer,
    y: GPUBuffer,
    m: number,
    nOut: number,
    nIn: number,
    frozen: boolean,
  ): void {
    const packedB = frozen ? this.#packed : undefined;
    gemm(this.#rec, { a: x, b: w, c: y, bias, m, n: nOut, k: nIn, transB: true, packedB });
  }

  /**
   * dX (+)= dY·w for a weight w [nOut, nIn]; a `frozen` one's packed texture may be kept ({@link #packed}), as in
   * {@link #linear}.
   */
  #backThroughWeight(
    dY: GPUBuffer,
    w: GPUBuffer,
    dX: GPUBuffer,
    m: number,
    nIn: number,
    nOut: number,
    frozen: boolean,
    accumulate = false,
  ): void {
    const packedB = frozen ? this.#packed : undefined;
    gemm(this.#rec, { a: dY, b: w, c: dX, m, n: nIn, k: nOut, accumulate, packedB });
  }

  #module(layer: number, target: LoraTarget): AdaptedModule | undefined {
    if (!this.lora.targets.includes(target)) return undefined;
    return this.modules[layer * this.lora.targets.length + this.lora.targets.indexOf(target)];
  }

  /** What a LoRA module's forward and backward share, or undefined where `target` is not adapted. */
  #loraShared(
    plan: ActivationPlan,
    layer: number,
    target: LoraTarget,
    M: number,
    train: boolean,
    stream: number,
    rowsEvery: number,
  ) {
    const mod = this.#module(layer, target);
    if (!mod) return undefined;
    return {
      mod,
      args: {
        a: mod.a.param,
        b: mod.b.param,
        maskA: mod.maskA,
        maskB: mod.maskB,
        t: plan.layers[layer].loraT.get(target)!,
        m: M,
        nIn: mod.nIn,
        nOut: mod.nOut,
        r: this.lora.r,
        scale: this.scale,
        dropout: train ? this.rates.lora : 0,
        dropKey: this.#key(stream, layer, SITE.lora + TARGET_INDEX[target]),
        rowsEvery,
      },
    };
  }

  #loraFwd(
    plan: ActivationPlan,
    layer: number,
    target: LoraTarget,
    x: GPUBuffer,
    y: GPUBuffer,
    M: number,
    train: boolean,
    stream: number,
    rowsEvery = 1,
  ): void {
    const shared = this.#loraShared(plan, layer, target, M, train, stream, rowsEvery);
    if (shared) loraForward(this.#rec, { ...shared.args, x, y });
  }

  #loraBwd(
    plan: ActivationPlan,
    layer: number,
    target: LoraTarget,
    dy: GPUBuffer,
    x: GPUBuffer,
    dx: GPUBuffer | undefined,
    M: number,
    train: boolean,
    stream: number,
    rowsEvery = 1,
  ): void {
    const shared = this.#loraShared(plan, layer, target, M, train, stream, rowsEvery);
    if (!shared) return;
    loraBackward(this.#rec, { ...shared.args, dy, x, dA: shared.mod.a.grad, dB: shared.mod.b.grad, dx });
  }

  #attentionGemms(B: number, T: number) {
    const H = this.config.hiddenSize, nh = this.config.numHeads, d = H / nh;
    const tok: [number, number] = [T * H, d];
    const att: [number, number] = [nh * T * T, T * T];
    return { H, nh, d, tok, att, batch: [B, nh] as [number, number] };
  }

  #dropoutOrNot(
    train: boolean,
    p: number,
    x: GPUBuffer,
    y: GPUBuffer,
    n: number,
    key: [number, number, number, number],
    rowsOf?: RowsOf,
  ): GPUBuffer {
    if (!train || p <= 0) return x;
    dropout(this.#rec, { x, y, n, p, key, rowsOf });
    return y;
  }

  /**
   * Whether layer `l` computes only the [CLS] rows: the last layer does unless {@link lastLayerAllRows}, since
   * only its [CLS] rows reach the head. Keys and values still cover every position.
   */
  #clsRowsOnly(l: number): boolean {
    return !this.lastLayerAllRows && l === this.config.numLayers - 1;
  }

  /** Copies the [CLS] row (the first) of each of the B sequences of x [B·T, H] into out [B, H]. */
  #gatherCls(x: GPUBuffer, out: GPUBuffer, B: number, T: number): GPUBuffer {
    const bytes = this.config.hiddenSize * 4;
    for (let b = 0; b < B; b++) this.#rec.copy(x, b * T * bytes, out, b * bytes, bytes);
    return out;
  }

  /** Copies rows [B, H] of `rows` back to the [CLS] rows of x [B·T, H] (the inverse of {@link #gatherCls}). */
  #scatterCls(rows: GPUBuffer, x: GPUBuffer, B: number, T: number): void {
    const bytes = this.config.hiddenSize * 4;
    for (let b = 0; b < B; b++) this.#rec.copy(rows, b * bytes, x, b * T * bytes, bytes);
  }

  #encodeForward(plan: ActivationPlan, B: number, T: number, train: boolean, stream: number): GPUBuffer {
    const cfg = this.config, rec = this.#rec, w = this.base;
    const M = B * T, H = cfg.hiddenSize, I = cfg.intermediateSize;
    const { nh, d, tok, att, batch } = this.#attentionGemms(B, T);
    embeddingGather(rec, { table: w.word, ids: plan.inputIds, out: plan.embPre, n: M });
    embeddingGather(rec, {
      table: w.position,
      ids: plan.positionIds,
      out: plan.embPre,
      n: M,
      accumulate: true,
    });
    embeddingGather(rec, { table: w.tokenType, ids: plan.typeIds, out: plan.embPre, n: M, accumulate: true });
    const embDrop = train && this.rates.hidden > 0;
    layerNorm(rec, {
      x: plan.embPre,
      gamma: w.embLnWeight,
      beta: w.embLnBias,
      y: embDrop ? plan.embLn : plan.hidden[0],
      mean: plan.embMean,
      rstd: plan.embRstd,
      rows: M,
      cols: H,
      eps: cfg.layerNormEps,
    });
    if (embDrop) {
      dropout(rec, {
        x: plan.embLn,
        y: plan.hidden[0],
        n: M * H,
        p: this.rates.hidden,
        key: this.#key(stream, 0, SITE.emb),
      });
    }
    for (let l = 0; l < cfg.numLayers; l++) {
      const x = plan.hidden[l], A = plan.layers[l], W = w.layers[l];
      // R rows computed: all M, or the B [CLS] rows (xr) of the last layer, whose masks stay those of their
      // places among all rows (rowsOf, every, queries).
      const cls = this.#clsRowsOnly(l), R = cls ? B : M, every = cls ? T : 1, queries = cls ? 1 : T;
      const xr = cls ? this.#gatherCls(x, plan.clsX, B, T) : x;
      const rowsOf: RowsOf | undefined = cls ? { cols: H, every: T } : undefined;
      const qTok: [number, number] = cls ? [H, d] : tok, qAtt: [number, number] = cls ? [nh * T, T] : att;
      this.#linear(xr, W.query, W.queryBias, A.q, R, H, H, true);
      this.#loraFwd(plan, l, "query", xr, A.q, R, train, stream, every);
      this.#linear(x, W.key, W.keyBias, A.k, M, H, H, true);
      this.#loraFwd(plan, l, "key", x, A.k, M, train, stream);
      this.#linear(x, W.value, W.valueBias, A.v, M, H, H, true);
      this.#loraFwd(plan, l, "value", x, A.v, M, train, stream);
      gemm(rec, {
        a: A.q,
        b: A.k,
        c: plan.scores,
        m: queries,
        n: T,
        k: d,
        transB: true,
        lda: H,
        ldb: H,
        ldc: T,
        alpha: 1 / Math.sqrt(d),
        batch,
        strideA: qTok,
        strideB: tok,
        strideC: qAtt,
      });
      const attnDrop = train && this.rates.attention > 0;
      attentionSoftmax(rec, {
        scores: plan.scores,
        keyMask: plan.keyMask,
        probs: A.probs,
        probsDropped: attnDrop ? A.probsDropped : undefined,
        batch: B,
        heads: nh,
        seq: T,
        queries,
        dropout: attnDrop ? this.rates.attention : 0,
        dropKey: this.#key(stream, l, SITE.attnProbs),
      });
      gemm(rec, {
        a: attnDrop ? A.probsDropped : A.probs,
        b: A.v,
        c: A.ctx,
        m: queries,
        n: d,
        k: T,
        lda: T,
        ldb: H,
        ldc: H,
        batch,
        strideA: qAtt,
        strideB: tok,
        strideC: qTok,
      });
      this.#linear(A.ctx, W.attnOut, W.attnOutBias, plan.proj, R, H, H, true);
      this.#loraFwd(plan, l, "attention.output.dense", A.ctx, plan.proj, R, train, stream, every);
      const o = this.#dropoutOrNot(
        train,
        this.rates.hidden,
        plan.proj,
        plan.projDropped,
        R * H,
        this.#key(stream, l, SITE.attnOut),
        rowsOf,
      );
      add(rec, { a: xr, b: o, out: A.s1, n: R * H });
      layerNorm(rec, {
        x: A.s1,
        gamma: W.ln1Weight,
        beta: W.ln1Bias,
        y: A.a,
        mean: A.mean1,
        rstd: A.rstd1,
        rows: R,
        cols: H,
        eps: cfg.layerNormEps,
      });
      this.#linear(A.a, W.inter, W.interBias, A.u, R, I, H, true);
      this.#loraFwd(plan, l, "intermediate.dense", A.a, A.u, R, train, stream, every);
      gelu(rec, { x: A.u, y: A.g, n: R * I });
      this.#linear(A.g, W.out, W.outBias, plan.proj, R, H, I, true);
      this.#loraFwd(plan, l, "output.dense", A.g, plan.proj, R, train, stream, every);
      const f = this.#dropoutOrNot(
        train,
        this.rates.hidden,
        plan.proj,
        plan.projDropped,
        R * H,
        this.#key(stream, l, SITE.ffnOut),
        rowsOf,
      );
      add(rec, { a: A.a, b: f, out: A.s2, n: R * H });
      layerNorm(rec, {
        x: A.s2,
        gamma: W.ln2Weight,
        beta: W.ln2Bias,
        y: plan.hidden[l + 1],
        mean: A.mean2,
        rstd: A.rstd2,
        rows: R,
        cols: H,
        eps: cfg.layerNormEps,
      });
    }
    // Classification head on the first token of each sequence.
    const L = this.numLabels, last = plan.hidden[cfg.numLayers], Lh = cfg.numLayers;
    if (this.#clsRowsOnly(Lh - 1)) rec.copy(last, 0, plan.cls, 0, B * H * 4);
    else this.#gatherCls(last, plan.cls, B, T);
    const clsIn = this.#dropoutOrNot(
      train,
      this.#clsDropout,
      plan.cls,
      plan.clsDropped,
      B * H,
      this.#key(stream, Lh, SITE.cls),
    );
    const dense = this.#headDense;
    this.#linear(clsIn, dense.w, dense.b, plan.pre, B, H, H, dense.frozen);
    tanhForward(rec, { x: plan.pre, y: plan.pooled, n: B * H });
    const pooledIn = this.#dropoutOrNot(
      train,
      this.rates.classifier,
      plan.pooled,
      plan.pooledDropped,
      B * H,
      this.#key(stream, Lh, SITE.pooled),
    );
    this.#linear(pooledIn, this.head.outW.param, this.head.outB.param, plan.logits, B, L, H, false);
    return clsIn;
  }

  #encodeLoss(plan: ActivationPlan, B: number): void {
    if (this.numLabels === 1) {
      meanSquaredError(this.#rec, {
        preds: plan.logits,
        targets: plan.labels,
        losses: plan.losses,
        dPreds: plan.dLogits,
        batch: B,
      });
    } else {
      crossEntropy(this.#rec, {
        logits: plan.logits,
        labels: plan.labels,
        losses: plan.losses,
        dLogits: plan.dLogits,
        batch: B,
        classes: this.numLabels,
      });
    }
  }

  /**
   * Backward of `out = LayerNorm(res + dropout(branch))`: writes d(res) into `plan.dS` and returns d(branch)
   * (`plan.dS` itself when there is no dropout, else `plan.dProj`).
   */
  #lnResidualBackward(
    plan: ActivationPlan,
    dy: GPUBuffer,
    s: GPUBuffer,
    gamma: GPUBuffer,
    mean: GPUBuffer,
    rstd: GPUBuffer,
    rows: number,
    drop: boolean,
    stream: number,
    layer: number,
    site: number,
    rowsOf: RowsOf | undefined,
  ): GPUBuffer {
    const H = this.config.hiddenSize;
    layerNormBackward(this.#rec, { dy, x: s, gamma, mean, rstd, dx: plan.dS, rows, cols: H });
    if (!drop) return plan.dS;
    dropoutBackward(this.#rec, {
      dy: plan.dS,
      dx: plan.dProj,
      n: rows * H,
      p: this.rates.hidden,
      key: this.#key(stream, layer, site),
      rowsOf,
    });
    return plan.dProj;
  }

  #encodeBackward(
    plan: ActivationPlan,
    B: number,
    T: number,
    train: boolean,
    stream: number,
    clsIn: GPUBuffer,
  ): void {
    const cfg = this.config, rec = this.#rec, w = this.base, hd = this.head;
    const M = B * T, H = cfg.hiddenSize, I = cfg.intermediateSize, L = this.numLabels, Lh = cfg.numLayers;
    const { nh, d, tok, att, batch } = this.#attentionGemms(B, T);
    const pooledIn = train && this.rates.classifier > 0 ? plan.pooledDropped : plan.pooled;
    // head
    gemm(rec, { a: plan.dLogits, b: pooledIn, c: hd.outW.grad, m: L, n: H, k: B, transA: true });
    sumRows(rec, { x: plan.dLogits, out: hd.outB.grad, rows: B, cols: L });
    gemm(rec, { a: plan.dLogits, b: hd.outW.param, c: plan.dPooledDropped, m: B, n: H, k: L });
    let dPooled = plan.dPooledDropped;
    if (train && this.rates.classifier > 0) {
      dropoutBackward(rec, {
        dy: plan.dPooledDropped,
        dx: plan.dPooled,
        n: B * H,
        p: this.rates.classifier,
        key: this.#key(stream, Lh, SITE.pooled),
      });
      dPooled = plan.dPooled;
    }
    tanhBackward(rec, { y: plan.pooled, dy: dPooled, dx: plan.dPre, n: B * H });
    if (hd.denseW && hd.denseB) {
      gemm(rec, { a: plan.dPre, b: clsIn, c: hd.denseW.grad, m: H, n: H, k: B, transA: true });
      sumRows(rec, { x: plan.dPre, out: hd.denseB.grad, rows: B, cols: H });
    }
    const dense = this.#headDense;
    this.#backThroughWeight(plan.dPre, dense.w, plan.dClsDropped, B, H, H, dense.frozen);
    let dCls = plan.dClsDropped;
    if (train && this.#clsDropout > 0) {
      dropoutBackward(rec, {
        dy: plan.dClsDropped,
        dx: plan.dCls,
        n: B * H,
        p: this.rates.classifier,
        key: this.#key(stream, Lh, SITE.cls),
      });
      dCls = plan.dCls;
    }
    let cur = 0;
    if (!this.#clsRowsOnly(Lh - 1)) {
      rec.clear(plan.dH[cur], 0, M * H * 4);
      this.#scatterCls(dCls, plan.dH[cur], B, T);
    }
    const hiddenDrop = train && this.rates.hidden > 0;
    for (let l = Lh - 1; l >= 0; l--) {
      const A = plan.layers[l], W = w.layers[l], x = plan.hidden[l];
      // R rows as in the forward pass: the last layer's [CLS] rows alone take their gradient straight from dCls
      const cls = this.#clsRowsOnly(l), R = cls ? B : M, every = cls ? T : 1, queries = cls ? 1 : T;
      const xr = cls ? plan.clsX : x, dOut = cls ? dCls : plan.dH[cur];
      const rowsOf: RowsOf | undefined = cls ? { cols: H, every: T } : undefined;
      const qTok: [number, number] = cls ? [H, d] : tok, qAtt: [number, number] = cls ? [nh * T, T] : att;
      // out = LN2(s2), s2 = a + drop(f)
      const df = this.#lnResidualBackward(
        plan,
        dOut,
        A.s2,
        W.ln2Weight,
        A.mean2,
        A.rstd2,
        R,
        hiddenDrop,
        stream,
        l,
        SITE.ffnOut,
        rowsOf,
      );
      this.#backThroughWeight(df, W.out, plan.dG, R, I, H, true);
      this.#loraBwd(plan, l, "output.dense", df, A.g, plan.dG, R, train, stream, every);
      geluBackward(rec, { x: A.u, dy: plan.dG, dx: plan.dU, n: R * I });
      this.#backThroughWeight(plan.dU, W.inter, plan.dA, R, H, I, true);
      this.#loraBwd(plan, l, "intermediate.dense", plan.dU, A.a, plan.dA, R, train, stream, every);
      addInPlace(rec, { x: plan.dS, y: plan.dA, n: R * H });
      // a = LN1(s1), s1 = x + drop(o)
      const dO = this.#lnResidualBackward(
        plan,
        plan.dA,
        A.s1,
        W.ln1Weight,
        A.mean1,
        A.rstd1,
        R,
        hiddenDrop,
        stream,
        l,
        SITE.attnOut,
        rowsOf,
      );
      this.#backThroughWeight(dO, W.attnOut, plan.dCtx, R, H, H, true);
      this.#loraBwd(plan, l, "attention.output.dense", dO, A.ctx, plan.dCtx, R, train, stream, every);
      // attention
      const attnDrop = train && this.rates.attention > 0;
      const P = attnDrop ? A.probsDropped : A.probs;
      gemm(rec, {
        a: plan.dCtx,
        b: A.v,
        c: plan.dProbsDropped,
        m: queries,
        n: T,
        k: d,
        transB: true,
        lda: H,
        ldb: H,
        ldc: T,
        batch,
        strideA: qTok,
        strideB: tok,
        strideC: qAtt,
      });
      gemm(rec, {
        a: P,
        b: plan.dCtx,
        c: plan.dV,
        m: T,
        n: d,
        k: queries,
        transA: true,
        lda: T,
        ldb: H,
        ldc: H,
        batch,
        strideA: qAtt,
        strideB: qTok,
        strideC: tok,
      });
      attentionSoftmaxBackward(rec, {
        dProbsDropped: plan.dProbsDropped,
        probs: A.probs,
        dScores: plan.dScores,
        batch: B,
        heads: nh,
        seq: T,
        queries,
        dropout: attnDrop ? this.rates.attention : 0,
        dropKey: this.#key(stream, l, SITE.attnProbs),
      });
      const s = 1 / Math.sqrt(d);
      gemm(rec, {
        a: plan.dScores,
        b: A.k,
        c: plan.dQ,
        m: queries,
        n: d,
        k: T,
        lda: T,
        ldb: H,
        ldc: H,
        alpha: s,
        batch,
        strideA: qAtt,
        strideB: tok,
        strideC: qTok,
      });
      gemm(rec, {
        a: plan.dScores,
        b: A.q,
        c: plan.dK,
        m: T,
        n: d,
        k: queries,
        transA: true,
        lda: T,
        ldb: H,
        ldc: H,
        alpha: s,
        batch,
        strideA: qAtt,
        strideB: qTok,
        strideC: tok,
      });
      // the layer's input gradient (not needed below layer 0: nothing trainable there), summed in the same order
      // whatever R: residual, then the query, key and value products, then their LoRA branches
      const dX = l > 0 ? plan.dH[1 - cur] : undefined;
      if (dX && cls) {
        // the residual and the query reach the [CLS] rows only (every other row of a full pass adds exact zeros)
        rec.clear(dX, 0, M * H * 4);
        this.#scatterCls(plan.dS, dX, B, T);
        const packedB = this.#packed;
        gemm(rec, { a: plan.dQ, b: W.query, c: dX, m: B, n: H, k: H, ldc: T * H, accumulate: true, packedB });
        this.#backThroughWeight(plan.dK, W.key, dX, M, H, H, true, true);
        this.#backThroughWeight(plan.dV, W.value, dX, M, H, H, true, true);
        if (this.#module(l, "query")) {
          // LoRA adds into the [CLS] rows through a compact copy of them
          this.#gatherCls(dX, plan.dClsX, B, T);
          this.#loraBwd(plan, l, "query", plan.dQ, xr, plan.dClsX, R, train, stream, every);
          this.#scatterCls(plan.dClsX, dX, B, T);
        }
      } else if (dX) {
        rec.copy(plan.dS, 0, dX, 0, M * H * 4);
        for (const [dY, wt] of [[plan.dQ, W.query], [plan.dK, W.key], [plan.dV, W.value]]) {
          this.#backThroughWeight(dY, wt, dX, M, H, H, true, true);
        }
      }
      if (!dX || !cls) this.#loraBwd(plan, l, "query", plan.dQ, xr, dX, R, train, stream, every);
      this.#loraBwd(plan, l, "key", plan.dK, x, dX, M, train, stream);
      this.#loraBwd(plan, l, "value", plan.dV, x, dX, M, train, stream);
      cur = 1 - cur;
    }
  }

  #nextStream(opts: PassOptions): number {
    return opts.dropoutStream ?? this.#stream++;
  }

  /** Logits `[batch × numLabels]` of a batch (evaluation mode unless `train`). */
  async forward(input: ModelInput, opts: PassOptions = {}): Promise<Float32Array> {
    const plan = this.#ensurePlan(input.batch, input.seqLen, "inference");
    this.#writeInputs(plan, input);
    if (opts.masks) this.setMasks(opts.masks);
    this.#encodeForward(plan, input.batch, input.seqLen, opts.train ?? false, this.#nextStream(opts));
    return await this.#rec.read(plan.logits, input.batch * this.numLabels);
  }

  /** Records forward, loss and backward; returns nothing (gradients stay on the device). */
  #encodeStep(input: LabelledInput, opts: PassOptions): ActivationPlan {
    const plan = this.#ensurePlan(input.batch, input.seqLen, "training");
    this.#writeInputs(plan, input, input.labels);
    if (opts.masks) this.setMasks(opts.masks);
    const train = opts.train ?? false, stream = this.#nextStream(opts);
    const clsIn = this.#encodeForward(plan, input.batch, input.seqLen, train, stream);
    this.#encodeLoss(plan, input.batch);
    this.#encodeBackward(plan, input.batch, input.seqLen, train, stream, clsIn);
    return plan;
  }

  /** Mean loss of a batch and the gradients of every adapter tensor (peft names). */
  async lossAndGrads(
    input: LabelledInput,
    opts: PassOptions = {},
  ): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
    const plan = this.#encodeStep(input, opts);
    const losses = await this.#rec.read(plan.losses, input.batch);
    const grads = new Map<string, Float32Array>();
    for (const t of this.trainables) grads.set(t.name, await this.gpu.read(t.grad, t.size));
    return { loss: mean(losses), grads };
  }

  /** One training step: forward, backward and AdamW in one command buffer; returns the mean loss. */
  async trainStep(input: LabelledInput, opts: StepOptions): Promise<number> {
    const plan = this.#encodeStep(input, { train: true, ...opts });
    const b1 = opts.beta1 ?? 0.9, b2 = opts.beta2 ?? 0.999;
    for (const t of this.trainables) {
      if (opts.freezeA && this.modules.some((m) => m.a === t)) continue;
      adamw(this.#rec, {
        param: t.param,
        grad: t.grad,
        m: t.m,
        v: t.v,
        mask: t.elemMask,
        n: t.size,
        lr: opts.lr,
        beta1: b1,
        beta2: b2,
        eps: opts.eps ?? 1e-8,
        weightDecay: opts.weightDecay ?? 0.01,
        step: opts.step,
      });
    }
    const losses = await this.#rec.read(plan.losses, input.batch);
    return mean(losses);
  }

  /** Zeroes the AdamW state (a fresh optimiser, as the reference code creates one per round). */
  resetOptimizer(): void {
    for (const t of this.trainables) {
      this.#rec.clear(t.m);
      this.#rec.clear(t.v);
    }
    this.#rec.submit();
  }

  /** Reads every adapter tensor (LoRA A/B of each module, the head) keyed by peft names. */
  async getAdapter(): Promise<Map<string, Float32Array>> {
    this.#rec.submit();
    const out = new Map<string, Float32Array>();
    for (const t of this.trainables) out.set(t.name, await this.gpu.read(t.param, t.size));
    return out;
  }

  /** Writes adapter tensors (any subset of the peft names); sizes are checked. */
  setAdapter(values: Map<string, Float32Array>): void {
    const byName = new Map(this.trainables.map((t) => [t.name, t]));
    for (const [name, data] of values) {
      const t = byName.get(name);
      if (!t) throw new Error(`setAdapter: unknown adapter tensor ${name}`);
      if (data.length !== t.size) {
        throw new Error(`setAdapter: ${name} has ${data.length} values, expected ${t.size}`);
      }
      this.gpu.write(t.param, data);
    }
  }

  /** Shape of every adapter tensor by peft name. */
  get adapterShapes(): Map<string, number[]> {
    const r = this.lora.r, H = this.config.hiddenSize, L = this.numLabels;
    const out = new Map<string, number[]>();
    for (const m of this.modules) {
      out.set(m.a.name, [r, m.nIn]);
      out.set(m.b.name, [m.nOut, r]);
    }
    for (const t of headLayout(this.config.modelType, H, L)) out.set(t.name, t.shape);
    return out;
  }

  /** Writes the current adapter in peft's format (`adapter_model.safetensors`, `adapter_config.json`). */
  async saveAdapter(dir: string): Promise<void> {
    await saveAdapter(dir, await this.getAdapter(), this.adapterShapes, this.lora, this.dir);
  }

  /** Adds `left [nOut, q] · right [q, nIn]` to the frozen weight of a module (FedEx-LoRA residual). */
  mergeResidual(path: string, left: Float32Array, right: Float32Array, q: number): void {
    const mod = this.modules.find((m) => m.path === path);
    if (!mod) throw new Error(`mergeResidual: ${path} is not an adapted module of this model`);
    const w = moduleWeight(this.base.layers, path);
    if (left.length !== mod.nOut * q || right.length !== q * mod.nIn) {
      throw new Error(`mergeResidual ${path}: expected [${mod.nOut}, ${q}] and [${q}, ${mod.nIn}] factors`);
    }
    const l = this.gpu.upload(left, "residual.left"), r = this.gpu.upload(right, "residual.right");
    gemm(this.#rec, { a: l, b: r, c: w, m: mod.nOut, n: mod.nIn, k: q, accumulate: true });
    this.#rec.submit();
    this.#packed.forget(w);
    l.destroy();
    r.destroy();
  }

  /** Reads a module's frozen weight `[nOut, nIn]` (e.g. after FedEx residuals were merged into it). */
  async readModuleWeight(path: string): Promise<Float32Array> {
    this.#rec.submit();
    const w = moduleWeight(this.base.layers, path);
    return await this.gpu.read(w, w.size / 4);
  }

  /** Overwrites a module's frozen weight (restoring a checkpoint). */
  writeModuleWeight(path: string, data: Float32Array): void {
    const w = moduleWeight(this.base.layers, path);
    if (data.length * 4 !== w.size) {
      throw new Error(`writeModuleWeight ${path}: ${data.length} values, expected ${w.size / 4}`);
    }
    this.gpu.write(w, data);
    this.#packed.forget(w);
  }

  /** Bytes of the packed frozen-weight textures and how often products found them packed. */
  get packedWeights(): { bytes: number; budget: number; hits: number; packs: number } {
    return { bytes: this.#packed.bytes, budget: this.#packed.budgetBytes, ...this.#packed.stats };
  }
}

function mustGet(m: Map<string, Float32Array>, name: string, size: number): Float32Array {
  const v = m.get(name);
  if (!v || v.length !== size) {
    throw new Error(`adapter initialisation did not produce ${name} with ${size} values`);
  }
  return v;
}

function mean(a: Float32Array): number {
  let s = 0;
  for (const x of a) s += x;
  return s / a.length;
}
