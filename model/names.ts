/**
 * Canonical tensor names shared by the model, the federated code and the exporters: Hugging Face names for
 * the frozen encoder weights (`roberta.` or `bert.` prefix, by the config's `model_type`), peft names for the
 * trainable adapter (LoRA A/B of every target module and the classification head), the LoRA scale, and the
 * fixed order of the trainable tensors.
 *
 * @example
 * ```ts
 * const path = modulePath(3, "query"); // "roberta.encoder.layer.3.attention.self.query"
 * const { a, b } = loraNames(path); // "base_model.model.roberta.encoder.layer.3.attention.self.query.lora_A.weight", …
 * ```
 * @module
 */

/** The modules of an encoder layer that LoRA may adapt, in the canonical order used by every layout. */
export const LORA_TARGETS = [
  "query",
  "key",
  "value",
  "attention.output.dense",
  "intermediate.dense",
  "output.dense",
] as const;

/** One legal LoRA target module (relative to an encoder layer). */
export type LoraTarget = typeof LORA_TARGETS[number];

/**
 * The encoder families this project implements, by the config's `model_type`: RoBERTa (positions after the
 * padding id, a trainable dense+tanh+out_proj head) and BERT (positions from 0, token types, a frozen pooler
 * dense+tanh feeding a trainable linear classifier).
 */
export type ModelFamily = "roberta" | "bert";

/** The shape fields of an encoder config that the names need. */
export interface ShapeConfigLike {
  /** Encoder family (default "roberta"). */
  modelType?: ModelFamily;
  /** Hidden size H. */
  hiddenSize: number;
  /** Intermediate (feed-forward) size I. */
  intermediateSize: number;
}

/** The fields of an encoder config that the base-weight layout needs. */
export interface BaseConfigLike extends ShapeConfigLike {
  /** Number of encoder layers. */
  numLayers: number;
  /** Vocabulary size (rows of the word embedding). */
  vocabSize: number;
  /** Rows of the position embedding. */
  maxPositionEmbeddings: number;
  /** Rows of the token-type embedding. */
  typeVocabSize: number;
}

/** LoRA hyper-parameters (peft `LoraConfig` subset). */
export interface LoraSettings {
  /** Rank r (≥ 1). */
  r: number;
  /** lora_alpha. */
  alpha: number;
  /** Adapted modules of every layer. */
  targets: LoraTarget[];
  /** rsLoRA: scale alpha/√r instead of alpha/r. */
  rslora?: boolean;
  /** lora_dropout on the LoRA branch input (training only; peft default 0). */
  dropout?: number;
}

/** Throws unless `target` is one of {@link LORA_TARGETS}. */
export function checkLoraTarget(target: string): LoraTarget {
  if (!(LORA_TARGETS as readonly string[]).includes(target)) {
    throw new Error(`LoRA target "${target}" is not one of ${LORA_TARGETS.join(", ")}`);
  }
  return target as LoraTarget;
}

/**
 * Hugging Face module path of a LoRA target in layer `layer`, e.g.
 * `modulePath(3, "query")` → `"roberta.encoder.layer.3.attention.self.query"`,
 * `modulePath(3, "output.dense")` → `"roberta.encoder.layer.3.output.dense"`,
 * `modulePath(3, "query", "bert")` → `"bert.encoder.layer.3.attention.self.query"`.
 */
export function modulePath(layer: number, target: LoraTarget, family: ModelFamily = "roberta"): string {
  if (!Number.isInteger(layer) || layer < 0) {
    throw new Error(`layer index must be an integer ≥ 0, got ${layer}`);
  }
  checkLoraTarget(target);
  const prefix = `${family}.encoder.layer.${layer}`;
  if (target === "query" || target === "key" || target === "value") {
    return `${prefix}.attention.self.${target}`;
  }
  return `${prefix}.${target}`;
}

/** Output and input size of a target's `nn.Linear` (weight `[nOut, nIn]`). */
export function moduleShape(cfg: ShapeConfigLike, target: LoraTarget): { nOut: number; nIn: number } {
  checkLoraTarget(target);
  const h = cfg.hiddenSize, i = cfg.intermediateSize;
  if (target === "intermediate.dense") return { nOut: i, nIn: h };
  if (target === "output.dense") return { nOut: h, nIn: i };
  return { nOut: h, nIn: h };
}

/** peft adapter tensor names of the module at `path` (as saved in `adapter_model.safetensors`). */
export function loraNames(path: string): { a: string; b: string } {
  return { a: `base_model.model.${path}.lora_A.weight`, b: `base_model.model.${path}.lora_B.weight` };
}

/** peft names of the RoBERTa classification head (`modules_to_save = ["classifier"]`). */
export const HEAD_NAMES = {
  denseWeight: "base_model.model.classifier.dense.weight",
  denseBias: "base_model.model.classifier.dense.bias",
  outWeight: "base_model.model.classifier.out_proj.weight",
  outBias: "base_model.model.classifier.out_proj.bias",
} as const;

/** peft names of the BERT classifier (`modules_to_save = ["classifier"]`; the pooler stays frozen). */
export const BERT_HEAD_NAMES = {
  outWeight: "base_model.model.classifier.weight",
  outBias: "base_model.model.classifier.bias",
} as const;

/** One trainable tensor of a classification head: its peft name, its name in a checkpoint, its shape. */
export interface HeadTensorInfo {
  /** Which part of the head: the dense layer before tanh (RoBERTa only) or the output projection. */
  role: "denseWeight" | "denseBias" | "outWeight" | "outBias";
  /** peft name (adapter files, aggregation). */
  name: string;
  /** Hugging Face name in a fine-tuned `…ForSequenceClassification` checkpoint. */
  hfName: string;
  /** Shape (row-major). */
  shape: number[];
}

/**
 * The trainable head tensors of a family: RoBERTa's dense `[H, H]`, dense bias, out_proj `[numLabels, H]` and its
 * bias; BERT's classifier `[numLabels, H]` and bias (its pooler is part of the frozen base).
 *
 * @example
 * ```ts
 * headLayout("bert", 384, 2).map((t) => t.name); // ["base_model.model.classifier.weight", "…classifier.bias"]
 * ```
 */
export function headLayout(family: ModelFamily, hidden: number, numLabels: number): HeadTensorInfo[] {
  if (family === "bert") {
    return [
      {
        role: "outWeight",
        name: BERT_HEAD_NAMES.outWeight,
        hfName: "classifier.weight",
        shape: [numLabels, hidden],
      },
      { role: "outBias", name: BERT_HEAD_NAMES.outBias, hfName: "classifier.bias", shape: [numLabels] },
    ];
  }
  return [
    {
      role: "denseWeight",
      name: HEAD_NAMES.denseWeight,
      hfName: "classifier.dense.weight",
      shape: [hidden, hidden],
    },
    { role: "denseBias", name: HEAD_NAMES.denseBias, hfName: "classifier.dense.bias", shape: [hidden] },
    {
      role: "outWeight",
      name: HEAD_NAMES.outWeight,
      hfName: "classifier.out_proj.weight",
      shape: [numLabels, hidden],
    },
    { role: "outBias", name: HEAD_NAMES.outBias, hfName: "classifier.out_proj.bias", shape: [numLabels] },
  ];
}

/** The LoRA scale s: alpha / r, or alpha / √r with rsLoRA. */
export function loraScale(l: LoraSettings): number {
  if (!Number.isInteger(l.r) || l.r < 1) throw new Error(`LoRA r must be an integer ≥ 1, got ${l.r}`);
  if (!Number.isFinite(l.alpha)) throw new Error(`LoRA alpha must be a finite number, got ${l.alpha}`);
  return l.rslora ? l.alpha / Math.sqrt(l.r) : l.alpha / l.r;
}

/** One trainable tensor of the adapter. */
export interface AdapterTensorInfo {
  /** peft name. */
  name: string;
  /** Shape (row-major). */
  shape: number[];
  /** Module path for LoRA tensors (see {@link modulePath}); absent for the head. */
  module?: string;
  /** Which kind of tensor. */
  kind: "lora_A" | "lora_B" | "head";
}

/**
 * Every trainable tensor in a fixed order: layer by layer, the targets in {@link LORA_TARGETS} order (whatever
 * order `lora.targets` lists them in), A `[r, nIn]` then B `[nOut, r]`; then the head of the family
 * ({@link headLayout}: for RoBERTa dense.weight `[H, H]`, dense.bias `[H]`, out_proj.weight `[numLabels, H]`,
 * out_proj.bias `[numLabels]`; for BERT classifier.weight `[numLabels, H]`, classifier.bias `[numLabels]`).
 *
 * @example
 * ```ts
 * const layout = adapterLayout(cfg, 2, { r: 8, alpha: 16, targets: ["query", "value"] });
 * const total = layout.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
 * ```
 */
export function adapterLayout(
  cfg: ShapeConfigLike & { numLayers: number },
  numLabels: number,
  lora: LoraSettings,
): AdapterTensorInfo[] {
  if (!Number.isInteger(numLabels) || numLabels < 1) {
    throw new Error(`numLabels must be an integer ≥ 1, got ${numLabels}`);
  }
  loraScale(lora);
  const seen = new Set<string>();
  for (const t of lora.targets) {
    checkLoraTarget(t);
    if (seen.has(t)) throw new Error(`LoRA target "${t}" is listed twice`);
    seen.add(t);
  }
  const family = cfg.modelType ?? "roberta";
  const out: AdapterTensorInfo[] = [];
  for (let layer = 0; layer < cfg.numLayers; layer++) {
    for (const target of LORA_TARGETS) {
      if (!seen.has(target)) continue;
      const path = modulePath(layer, target, family);
      const { nOut, nIn } = moduleShape(cfg, target);
      const names = loraNames(path);
      out.push({ name: names.a, shape: [lora.r, nIn], module: path, kind: "lora_A" });
      out.push({ name: names.b, shape: [nOut, lora.r], module: path, kind: "lora_B" });
    }
  }
  for (const t of headLayout(family, cfg.hiddenSize, numLabels)) {
    out.push({ name: t.name, shape: t.shape, kind: "head" });
  }
  return out;
}

/**
 * Canonical names and shapes of the frozen base weights a sequence classifier uses (Hugging Face names with
 * the `roberta.` or `bert.` prefix, `nn.Linear` weights `[out, in]`), embeddings first, then layer by layer,
 * then (BERT only) the pooler, which this project keeps frozen.
 */
export function baseLayout(cfg: BaseConfigLike): { name: string; shape: number[] }[] {
  const h = cfg.hiddenSize, i = cfg.intermediateSize, f = cfg.modelType ?? "roberta";
  const out: { name: string; shape: number[] }[] = [
    { name: `${f}.embeddings.word_embeddings.weight`, shape: [cfg.vocabSize, h] },
    { name: `${f}.embeddings.position_embeddings.weight`, shape: [cfg.maxPositionEmbeddings, h] },
    { name: `${f}.embeddings.token_type_embeddings.weight`, shape: [cfg.typeVocabSize, h] },
    { name: `${f}.embeddings.LayerNorm.weight`, shape: [h] },
    { name: `${f}.embeddings.LayerNorm.bias`, shape: [h] },
  ];
  for (let layer = 0; layer < cfg.numLayers; layer++) {
    const p = `${f}.encoder.layer.${layer}`;
    for (const m of ["query", "key", "value"]) {
      out.push({ name: `${p}.attention.self.${m}.weight`, shape: [h, h] });
      out.push({ name: `${p}.attention.self.${m}.bias`, shape: [h] });
    }
    out.push({ name: `${p}.attention.output.dense.weight`, shape: [h, h] });
    out.push({ name: `${p}.attention.output.dense.bias`, shape: [h] });
    out.push({ name: `${p}.attention.output.LayerNorm.weight`, shape: [h] });
    out.push({ name: `${p}.attention.output.LayerNorm.bias`, shape: [h] });
    out.push({ name: `${p}.intermediate.dense.weight`, shape: [i, h] });
    out.push({ name: `${p}.intermediate.dense.bias`, shape: [i] });
    out.push({ name: `${p}.output.dense.weight`, shape: [h, i] });
    out.push({ name: `${p}.output.dense.bias`, shape: [h] });
    out.push({ name: `${p}.output.LayerNorm.weight`, shape: [h] });
    out.push({ name: `${p}.output.LayerNorm.bias`, shape: [h] });
  }
  if (f === "bert") {
    out.push({ name: "bert.pooler.dense.weight", shape: [h, h] });
    out.push({ name: "bert.pooler.dense.bias", shape: [h] });
  }
  return out;
}
