/**
 * `config.json` of a Hugging Face RoBERTa (or BERT) encoder: parsed, validated field by field, and written back
 * with the Hugging Face field names.
 *
 * Shape fields (`vocab_size`, `hidden_size`, `num_hidden_layers`, `num_attention_heads`, `intermediate_size`,
 * `max_position_embeddings`) are required: a file without them is not the model the user thinks it is. The other
 * fields take the Hugging Face class defaults when absent (for example `layer_norm_eps` 1e-12, the class default;
 * RoBERTa checkpoints carry 1e-5).
 *
 * @example
 * ```ts
 * const cfg = await readConfig("models/roberta-base");
 * console.log(cfg.hiddenSize, cfg.numLayers, cfg.headSize);
 * await Deno.writeTextFile("config.json", JSON.stringify(configToJson(cfg), null, 2));
 * ```
 * @module
 */

/** The encoder constants this project reads from `config.json` (camelCase of the Hugging Face fields). */
export interface EncoderConfig {
  modelType: "roberta" | "bert";
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** hiddenSize / numHeads. */
  headSize: number;
  intermediateSize: number;
  maxPositionEmbeddings: number;
  typeVocabSize: number;
  layerNormEps: number;
  hiddenDropout: number;
  attentionDropout: number;
  padTokenId: number;
  hiddenAct: "gelu";
  initializerRange: number;
  /** Number of labels of a sequence classifier (`num_labels`, else the size of `id2label`), when given. */
  numLabels?: number;
  /** `problem_type` ("regression", "single_label_classification", "multi_label_classification"), when given. */
  problemType?: string;
  /** `classifier_dropout` when given and not null (Hugging Face then uses it instead of hiddenDropout in the head). */
  classifierDropout?: number;
  /** The whole parsed JSON object, for fields this interface does not name. */
  raw: Record<string, unknown>;
}

const PROBLEM_TYPES = ["regression", "single_label_classification", "multi_label_classification"];

/** Reads and validates `dir/config.json`. */
export async function readConfig(dir: string): Promise<EncoderConfig> {
  const file = `${dir.replace(/\/+$/, "")}/config.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new Error(`${file}: cannot read the model config (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(json, file);
}

/**
 * Validates a parsed `config.json` object; every error names `file` and the field and says what was expected.
 *
 * @example
 * ```ts
 * const cfg = parseConfig(JSON.parse(text), "roberta/config.json");
 * ```
 */
export function parseConfig(json: unknown, file: string): EncoderConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new Error(`${file}: the config must be a JSON object`);
  }
  const raw = json as Record<string, unknown>;
  const fail = (field: string, expected: string): never => {
    const v = field in raw ? JSON.stringify(raw[field]) : "nothing (field absent)";
    throw new Error(`${file}: field "${field}" must be ${expected}, found ${v}`);
  };
  const posInt = (field: string, fallback?: number): number => {
    const v = raw[field] ?? fallback;
    if (v === undefined) fail(field, "a positive integer (required)");
    if (!Number.isSafeInteger(v) || (v as number) <= 0) fail(field, "a positive integer");
    return v as number;
  };
  const prob = (field: string, fallback: number): number => {
    const v = raw[field] ?? fallback;
    if (typeof v !== "number" || !(v >= 0 && v < 1)) fail(field, "a probability in [0, 1)");
    return v as number;
  };

  const modelType = raw.model_type;
  if (modelType !== "roberta" && modelType !== "bert") fail("model_type", '"roberta" or "bert"');
  const isRoberta = modelType === "roberta";

  const vocabSize = posInt("vocab_size");
  const hiddenSize = posInt("hidden_size");
  const numLayers = posInt("num_hidden_layers");
  const numHeads = posInt("num_attention_heads");
  if (hiddenSize % numHeads !== 0) {
    fail("num_attention_heads", `a divisor of hidden_size ${hiddenSize}`);
  }
  const intermediateSize = posInt("intermediate_size");
  const maxPositionEmbeddings = posInt("max_position_embeddings");
  const typeVocabSize = posInt("type_vocab_size", 2);

  const act = raw.hidden_act ?? "gelu";
  if (act !== "gelu") {
    fail(
      "hidden_act",
      '"gelu" (the exact erf GELU; other activations such as "gelu_new" are not implemented)',
    );
  }
  const eps = raw.layer_norm_eps ?? 1e-12;
  if (typeof eps !== "number" || !(eps > 0 && eps < 1)) fail("layer_norm_eps", "a number in (0, 1)");
  const init = raw.initializer_range ?? 0.02;
  if (typeof init !== "number" || !(init > 0 && Number.isFinite(init))) {
    fail("initializer_range", "a positive number");
  }
  const hiddenDropout = prob("hidden_dropout_prob", 0.1);
  const attentionDropout = prob("attention_probs_dropout_prob", 0.1);

  const pad = raw.pad_token_id ?? (isRoberta ? 1 : 0);
  if (!Number.isSafeInteger(pad) || (pad as number) < 0 || (pad as number) >= vocabSize) {
    fail("pad_token_id", `an integer in [0, vocab_size ${vocabSize})`);
  }
  const padTokenId = pad as number;
  if (isRoberta && maxPositionEmbeddings <= padTokenId + 1) {
    fail("max_position_embeddings", `greater than pad_token_id + 1 = ${padTokenId + 1} (RoBERTa positions)`);
  }
  const posType = raw.position_embedding_type ?? "absolute";
  if (posType !== "absolute") fail("position_embedding_type", '"absolute" (the only kind implemented)');

  let numLabels: number | undefined;
  if (raw.num_labels !== undefined) numLabels = posInt("num_labels");
  if (raw.id2label !== undefined) {
    const m = raw.id2label;
    if (typeof m !== "object" || m === null || Array.isArray(m)) fail("id2label", "an object {index: label}");
    const n = Object.keys(m as object).length;
    if (numLabels !== undefined && n !== numLabels) fail("id2label", `${numLabels} entries (num_labels)`);
    if (n > 0) numLabels = n;
  }
  let problemType: string | undefined;
  if (raw.problem_type !== undefined && raw.problem_type !== null) {
    if (typeof raw.problem_type !== "string" || !PROBLEM_TYPES.includes(raw.problem_type)) {
      fail("problem_type", `one of ${PROBLEM_TYPES.map((p) => `"${p}"`).join(", ")} or null`);
    }
    problemType = raw.problem_type as string;
  }
  let classifierDropout: number | undefined;
  if (raw.classifier_dropout !== undefined && raw.classifier_dropout !== null) {
    classifierDropout = prob("classifier_dropout", 0);
  }

  const c: EncoderConfig = {
    modelType: modelType as "roberta" | "bert",
    vocabSize,
    hiddenSize,
    numLayers,
    numHeads,
    headSize: hiddenSize / numHeads,
    intermediateSize,
    maxPositionEmbeddings,
    typeVocabSize,
    layerNormEps: eps as number,
    hiddenDropout,
    attentionDropout,
    padTokenId,
    hiddenAct: "gelu",
    initializerRange: init as number,
    raw,
  };
  if (numLabels !== undefined) c.numLabels = numLabels;
  if (problemType !== undefined) c.problemType = problemType;
  if (classifierDropout !== undefined) c.classifierDropout = classifierDropout;
  return c;
}

/**
 * The Hugging Face `config.json` object for `c`: the fields of `c.raw` that this interface does not describe are
 * kept, the described ones are written from `c` (so an edited config round-trips), `architectures` names the
 * sequence classifier, and `id2label`/`label2id` are written when `numLabels` is set (kept from `raw` when it has
 * the right number of entries, else `LABEL_i`).
 */
export function configToJson(c: EncoderConfig): Record<string, unknown> {
  const isRoberta = c.modelType === "roberta";
  const out: Record<string, unknown> = { ...c.raw };
  delete out.num_labels;
  out.architectures = [isRoberta ? "RobertaForSequenceClassification" : "BertForSequenceClassification"];
  out.model_type = c.modelType;
  out.vocab_size = c.vocabSize;
  out.hidden_size = c.hiddenSize;
  out.num_hidden_layers = c.numLayers;
  out.num_attention_heads = c.numHeads;
  out.intermediate_size = c.intermediateSize;
  out.max_position_embeddings = c.maxPositionEmbeddings;
  out.type_vocab_size = c.typeVocabSize;
  out.layer_norm_eps = c.layerNormEps;
  out.hidden_dropout_prob = c.hiddenDropout;
  out.attention_probs_dropout_prob = c.attentionDropout;
  out.pad_token_id = c.padTokenId;
  out.hidden_act = c.hiddenAct;
  out.initializer_range = c.initializerRange;
  out.position_embedding_type = "absolute";
  if (isRoberta) {
    out.bos_token_id ??= 0;
    out.eos_token_id ??= 2;
  }
  if (c.classifierDropout !== undefined) out.classifier_dropout = c.classifierDropout;
  if (c.problemType !== undefined) out.problem_type = c.problemType;
  if (c.numLabels !== undefined) {
    const old = c.raw.id2label as Record<string, string> | undefined;
    const keep = old && typeof old === "object" && Object.keys(old).length === c.numLabels &&
      Array.from({ length: c.numLabels }, (_, i) => typeof old[String(i)] === "string").every(Boolean);
    const id2label: Record<string, string> = {};
    const label2id: Record<string, number> = {};
    for (let i = 0; i < c.numLabels; i++) {
      const name = keep ? old[String(i)] : `LABEL_${i}`;
      id2label[String(i)] = name;
      label2id[name] = i;
    }
    out.id2label = id2label;
    out.label2id = label2id;
  }
  return out;
}
