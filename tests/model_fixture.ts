/** Shared fixture of the model tests: the Hugging Face config.json of a tiny random RoBERTa. */
import type { EncoderConfigLike } from "../model/reference.ts";

/** config.json fields (Hugging Face names) for the encoder constants `c`, plus any `extra` fields. */
export function hfConfig(c: EncoderConfigLike, extra: Record<string, unknown> = {}) {
  return {
    architectures: ["RobertaForSequenceClassification"],
    model_type: "roberta",
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
