/**
 * Shared fixtures of the model tests: the Hugging Face config.json of a tiny random encoder, and seeded random
 * adapters and FedLoDrop masks for a loaded model.
 */
import { type EncoderConfigLike, randomBase } from "../model/reference.ts";
import { baseLayout } from "../model/names.ts";
import { writeSafetensors } from "../model/safetensors.ts";
import type { RobertaModel } from "../model/roberta.ts";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";

/** A tiny random RoBERTa's encoder constants (2 layers, hidden 16): the model tests' default. */
export const TINY_ROBERTA: EncoderConfigLike = {
  hiddenSize: 16,
  numLayers: 2,
  numHeads: 2,
  intermediateSize: 24,
  layerNormEps: 1e-5,
  padTokenId: 1,
  vocabSize: 60,
  maxPositionEmbeddings: 40,
  typeVocabSize: 1,
};

/** Seeded random values in [-0.3, 0.3) for every adapter tensor (LoRA A, B too, and the head). */
export function randomAdapter(model: RobertaModel, seed: number, key = 7): Map<string, Float32Array> {
  const r = new KeyedRandom([seed, Purpose.test, key]);
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of model.adapterShapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    out.set(name, Float32Array.from({ length: n }, () => (r.uniform() - 0.5) * 0.6));
  }
  return out;
}

/** Seeded FedLoDrop masks for every adapted module, about 30 % of the rows and columns dropped. */
export function randomMasks(
  model: RobertaModel,
  seed: number,
): Map<string, { a: Float32Array; b: Float32Array }> {
  const r = new KeyedRandom([seed, Purpose.test, 11]);
  const m = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (const mod of model.modules) {
    m.set(mod.path, {
      a: Float32Array.from({ length: mod.nIn }, () => (r.uniform() < 0.3 ? 0 : 1)),
      b: Float32Array.from({ length: mod.nOut }, () => (r.uniform() < 0.3 ? 0 : 1)),
    });
  }
  return m;
}

/** config.json fields (Hugging Face names) for the encoder constants `c`, plus any `extra` fields. */
export function hfConfig(c: EncoderConfigLike, extra: Record<string, unknown> = {}) {
  return {
    architectures: [
      c.modelType === "bert" ? "BertForSequenceClassification" : "RobertaForSequenceClassification",
    ],
    model_type: c.modelType ?? "roberta",
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    intermediate_size: c.intermediateSize,
    max_position_embeddings: c.maxPositionEmbeddings,
    type_vocab_size: c.typeVocabSize,
    layer_norm_eps: c.layerNormEps,
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    pad_token_id: c.padTokenId,
    bos_token_id: 0,
    eos_token_id: 2,
    hidden_act: "gelu",
    initializer_range: 0.02,
    ...extra,
  };
}

/**
 * Writes a tiny random model folder (config.json + F32 model.safetensors in the Hugging Face layout, weights from
 * `randomBase(cfg, seed)`) into a new temp folder and returns the folder.
 */
export async function writeTinyModel(
  cfg: EncoderConfigLike,
  seed: number,
  prefix = "fedlodrop-model-",
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  const base = randomBase(cfg, seed);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const { name, shape } of baseLayout(cfg)) {
    tensors.set(name, { shape, data: Float32Array.from(base.get(name)!) });
  }
  await writeSafetensors(`${dir}/model.safetensors`, tensors, { format: "pt" });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(hfConfig(cfg)));
  return dir;
}
