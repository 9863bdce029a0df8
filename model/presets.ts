/**
 * Encoder shapes of the random models `deno task make-model` writes: `tiny` (for tests and demos: the real RoBERTa
 * vocabulary so that the real tokenizer works, but a 32-wide, 2-layer encoder), and the shapes of `roberta-base`
 * and `roberta-large`. All carry RoBERTa's constants (layer_norm_eps 1e-5, pad id 1, 514 positions, one token type).
 *
 * @example
 * ```ts
 * const cfg = presetConfig("tiny", 3); // numLabels 3
 * console.log(PRESETS.large.hiddenSize); // 1024
 * ```
 * @module
 */
import type { EncoderConfig } from "./config.ts";

/** Names of the presets. */
export type PresetName = "tiny" | "base" | "large";

/** The preset names, in size order. */
export const PRESET_NAMES: readonly PresetName[] = ["tiny", "base", "large"];

function roberta(hidden: number, layers: number, heads: number, intermediate: number): EncoderConfig {
  return {
    modelType: "roberta",
    vocabSize: 50265,
    hiddenSize: hidden,
    numLayers: layers,
    numHeads: heads,
    headSize: hidden / heads,
    intermediateSize: intermediate,
    maxPositionEmbeddings: 514,
    typeVocabSize: 1,
    layerNormEps: 1e-5,
    hiddenDropout: 0.1,
    attentionDropout: 0.1,
    padTokenId: 1,
    hiddenAct: "gelu",
    initializerRange: 0.02,
    raw: {},
  };
}

/** Encoder configs of the presets (without labels; see {@link presetConfig}). Treat as read-only. */
export const PRESETS: Readonly<Record<PresetName, Readonly<EncoderConfig>>> = {
  tiny: roberta(32, 2, 2, 64),
  base: roberta(768, 12, 12, 3072),
  large: roberta(1024, 24, 16, 4096),
};

/** A fresh copy of preset `name` with `numLabels` set; throws naming the preset when it is unknown. */
export function presetConfig(name: string, numLabels?: number): EncoderConfig {
  if (!(PRESET_NAMES as readonly string[]).includes(name)) {
    throw new Error(`unknown model preset "${name}"; expected one of ${PRESET_NAMES.join(", ")}`);
  }
  const c: EncoderConfig = { ...PRESETS[name as PresetName], raw: {} };
  if (numLabels !== undefined) {
    if (!Number.isSafeInteger(numLabels) || numLabels < 1) {
      throw new Error(`number of labels must be an integer >= 1, got ${numLabels}`);
    }
    c.numLabels = numLabels;
  }
  return c;
}
