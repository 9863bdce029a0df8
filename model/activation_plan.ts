/**
 * The activation plan: every buffer one forward + backward pass needs, allocated once for a capacity of
 * rows (batch × sequence) and attention elements (batch × heads × sequence²), reused by every step and by
 * every simulated device. Per layer it keeps what the backward pass reads (llm.c style); scratch buffers
 * are shared across layers.
 *
 * An inference plan (`kind: "inference"`) serves forward passes only: nothing is saved for a backward pass,
 * so every layer uses the same set of activation buffers, the hidden states ping-pong between two buffers,
 * and the backward scratch buffers are one float each. Its size no longer grows with the number of layers.
 * @module
 */
import type { Gpu } from "../kernels/device.ts";

/** Saved activations of one encoder layer. */
export interface LayerActivations {
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  /** LoRA intermediate t = (x ⊙ mA) Aᵀ per adapted target of this layer, [rows, r]. */
  loraT: Map<string, GPUBuffer>;
  probs: GPUBuffer;
  /** Probabilities after attention dropout (the same buffer as `probs` is never used: eval mode skips it). */
  probsDropped: GPUBuffer;
  ctx: GPUBuffer;
  /** LayerNorm 1 input (x + dropout(attention output)) and its statistics. */
  s1: GPUBuffer;
  mean1: GPUBuffer;
  rstd1: GPUBuffer;
  /** LayerNorm 1 output. */
  a: GPUBuffer;
  /** Intermediate pre-activation and GELU output, [rows, intermediate]. */
  u: GPUBuffer;
  g: GPUBuffer;
  s2: GPUBuffer;
  mean2: GPUBuffer;
  rstd2: GPUBuffer;
}

/** Sizes a plan is built for. */
export interface PlanShape {
  rows: number;
  batch: number;
  attention: number;
  hidden: number;
  intermediate: number;
  layers: number;
  numLabels: number;
  /** Adapted targets per layer with their rank r. */
  loraTargets: string[];
  r: number;
}

/** What a plan serves: forward + backward (`training`) or forward passes only (`inference`). */
export type PlanKind = "training" | "inference";

/** All activation and scratch buffers of one step. */
export class ActivationPlan {
  readonly shape: PlanShape;
  readonly kind: PlanKind;
  /** Hidden states h[0..L]: h[0] the embedding output, h[l+1] the output of layer l. */
  readonly hidden: GPUBuffer[];
  readonly layers: LayerActivations[];
  readonly embPre: GPUBuffer;
  readonly embLn: GPUBuffer;
  readonly embMean: GPUBuffer;
  readonly embRstd: GPUBuffer;
  readonly inputIds: GPUBuffer;
  readonly positionIds: GPUBuffer;
  readonly typeIds: GPUBuffer;
  readonly keyMask: GPUBuffer;
  readonly labels: GPUBuffer;
  // scratch
  readonly scores: GPUBuffer;
  readonly proj: GPUBuffer;
  readonly projDropped: GPUBuffer;
  /** The last layer's input rows that it computes alone: the [CLS] row of each sequence, [batch, hidden]. */
  readonly clsX: GPUBuffer;
  // head
  readonly cls: GPUBuffer;
  readonly clsDropped: GPUBuffer;
  readonly pre: GPUBuffer;
  readonly pooled: GPUBuffer;
  readonly pooledDropped: GPUBuffer;
  readonly logits: GPUBuffer;
  readonly losses: GPUBuffer;
  readonly dLogits: GPUBuffer;
  // backward scratch
  readonly dPooledDropped: GPUBuffer;
  readonly dPooled: GPUBuffer;
  readonly dPre: GPUBuffer;
  readonly dClsDropped: GPUBuffer;
  readonly dCls: GPUBuffer;
  /** Scratch for the LoRA input gradient of the last layer's query on its [CLS] rows, [batch, hidden]. */
  readonly dClsX: GPUBuffer;
  readonly dH: [GPUBuffer, GPUBuffer];
  readonly dS: GPUBuffer;
  readonly dProj: GPUBuffer;
  readonly dA: GPUBuffer;
  readonly dG: GPUBuffer;
  readonly dU: GPUBuffer;
  readonly dCtx: GPUBuffer;
  readonly dProbsDropped: GPUBuffer;
  readonly dScores: GPUBuffer;
  readonly dQ: GPUBuffer;
  readonly dK: GPUBuffer;
  readonly dV: GPUBuffer;
  /** Bytes held by this plan. */
  readonly bytes: number;
  #all: GPUBuffer[] = [];

  constructor(gpu: Gpu, shape: PlanShape, kind: PlanKind = "training") {
    this.shape = shape;
    this.kind = kind;
    const { rows, batch, attention, hidden: H, intermediate: I, layers: L, numLabels } = shape;
    const inference = kind === "inference";
    let bytes = 0;
    const f = (n: number, label: string): GPUBuffer => {
      const b = gpu.buffer(n * 4, label);
      bytes += b.size;
      this.#all.push(b);
      return b;
    };
    // Backward scratch of an inference plan: never written, one float so that the fields stay typed.
    const g = (n: number, label: string): GPUBuffer => f(inference ? 1 : n, label);
    const pingPong = inference ? [f(rows * H, "h0"), f(rows * H, "h1")] : [];
    this.hidden = Array.from(
      { length: L + 1 },
      (_, l) => inference ? pingPong[l % 2] : f(rows * H, `h${l}`),
    );
    const layer = (l: number): LayerActivations => ({
      q: f(rows * H, `L${l}.q`),
      k: f(rows * H, `L${l}.k`),
      v: f(rows * H, `L${l}.v`),
      loraT: new Map(shape.loraTargets.map((t) => [t, f(rows * shape.r, `L${l}.${t}.loraT`)])),
      probs: f(attention, `L${l}.probs`),
      probsDropped: f(attention, `L${l}.probsDropped`),
      ctx: f(rows * H, `L${l}.ctx`),
      s1: f(rows * H, `L${l}.s1`),
      mean1: f(rows, `L${l}.mean1`),
      rstd1: f(rows, `L${l}.rstd1`),
      a: f(rows * H, `L${l}.a`),
      u: f(rows * I, `L${l}.u`),
      g: f(rows * I, `L${l}.g`),
      s2: f(rows * H, `L${l}.s2`),
      mean2: f(rows, `L${l}.mean2`),
      rstd2: f(rows, `L${l}.rstd2`),
    });
    const shared = inference ? layer(0) : null;
    this.layers = Array.from({ length: L }, (_, l) => shared ?? layer(l));
    this.embPre = f(rows * H, "emb.pre");
    this.embLn = f(rows * H, "emb.ln");
    this.embMean = f(rows, "emb.mean");
    this.embRstd = f(rows, "emb.rstd");
    this.inputIds = f(rows, "inputIds");
    this.positionIds = f(rows, "positionIds");
    this.typeIds = f(rows, "typeIds");
    this.keyMask = f(rows, "keyMask");
    this.labels = f(batch, "labels");
    this.scores = f(attention, "scores");
    this.proj = f(rows * H, "proj");
    this.projDropped = f(rows * H, "projDropped");
    this.clsX = f(batch * H, "clsX");
    this.cls = f(batch * H, "cls");
    this.clsDropped = f(batch * H, "clsDropped");
    this.pre = f(batch * H, "head.pre");
    this.pooled = f(batch * H, "head.pooled");
    this.pooledDropped = f(batch * H, "head.pooledDropped");
    this.logits = f(batch * numLabels, "logits");
    this.losses = f(batch, "losses");
    this.dLogits = g(batch * numLabels, "dLogits");
    this.dPooledDropped = g(batch * H, "dPooledDropped");
    this.dPooled = g(batch * H, "dPooled");
    this.dPre = g(batch * H, "dPre");
    this.dClsDropped = g(batch * H, "dClsDropped");
    this.dCls = g(batch * H, "dCls");
    this.dClsX = g(batch * H, "dClsX");
    this.dH = [g(rows * H, "dH0"), g(rows * H, "dH1")];
    this.dS = g(rows * H, "dS");
    this.dProj = g(rows * H, "dProj");
    this.dA = g(rows * H, "dA");
    this.dG = g(rows * I, "dG");
    this.dU = g(rows * I, "dU");
    this.dCtx = g(rows * H, "dCtx");
    this.dProbsDropped = g(attention, "dProbsDropped");
    this.dScores = g(attention, "dScores");
    this.dQ = g(rows * H, "dQ");
    this.dK = g(rows * H, "dK");
    this.dV = g(rows * H, "dV");
    this.bytes = bytes;
  }

  /** True when this plan can hold a batch of `batch` sequences of `seqLen` tokens (for `kind`'s passes). */
  fits(batch: number, seqLen: number, heads: number, kind: PlanKind = "training"): boolean {
    if (kind === "training" && this.kind !== "training") return false;
    return batch * seqLen <= this.shape.rows && batch <= this.shape.batch &&
      batch * heads * seqLen * seqLen <= this.shape.attention;
  }

  /** Frees every buffer. */
  destroy(): void {
    for (const b of this.#all) b.destroy();
    this.#all = [];
  }
}
