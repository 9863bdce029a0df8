/**
 * Float64 reference for `kernels/attention_softmax.ts`: key-masked softmax over the last axis of
 * scores [batch, heads, seq, seq], optional attention dropout, and the backward pass.
 * @module
 */
import { dropoutMaskRef } from "./dropout.ts";

/**
 * Masked softmax: padded keys (keyMask 0) get probability exactly 0; a row whose keys are all padding is
 * uniform 1/seq (the limit of HF's additive finfo.min mask). Returns probs and, when p > 0, probsDropped.
 *
 * @example
 * ```ts
 * const { probs } = attentionSoftmaxRef(scores, keyMask, batch, heads, seq);
 * ```
 */
export function attentionSoftmaxRef(
  scores: ArrayLike<number>,
  keyMask: ArrayLike<number>,
  batch: number,
  heads: number,
  seq: number,
  p = 0,
  key: readonly [number, number, number, number] = [0, 0, 0, 0],
): { probs: Float64Array; probsDropped: Float64Array } {
  const n = batch * heads * seq * seq;
  const probs = new Float64Array(n);
  for (let b = 0; b < batch; b++) {
    for (let row = 0; row < heads * seq; row++) {
      const base = (b * heads * seq + row) * seq;
      let max = -Infinity, real = 0;
      for (let j = 0; j < seq; j++) {
        if (keyMask[b * seq + j] !== 0) {
          max = Math.max(max, scores[base + j]);
          real++;
        }
      }
      if (real === 0) {
        for (let j = 0; j < seq; j++) probs[base + j] = 1 / seq;
        continue;
      }
      let sum = 0;
      for (let j = 0; j < seq; j++) {
        const e = keyMask[b * seq + j] !== 0 ? Math.exp(scores[base + j] - max) : 0;
        probs[base + j] = e;
        sum += e;
      }
      for (let j = 0; j < seq; j++) probs[base + j] /= sum;
    }
  }
  const probsDropped = new Float64Array(n);
  const keep = dropoutMaskRef(n, p, key);
  for (let i = 0; i < n; i++) probsDropped[i] = keep[i] ? probs[i] / (1 - p) : 0;
  return { probs, probsDropped };
}

/** Backward: dP = dropout'(dProbsDropped); dScores = P ⊙ (dP − Σ_j dP ⊙ P) per row. */
export function attentionSoftmaxBackwardRef(
  dProbsDropped: ArrayLike<number>,
  probs: ArrayLike<number>,
  batch: number,
  heads: number,
  seq: number,
  p = 0,
  key: readonly [number, number, number, number] = [0, 0, 0, 0],
): Float64Array {
  const rows = batch * heads * seq;
  const n = rows * seq;
  const keep = dropoutMaskRef(n, p, key);
  const d = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const base = r * seq;
    let dot = 0;
    for (let j = 0; j < seq; j++) {
      const dp = keep[base + j] ? dProbsDropped[base + j] / (1 - p) : 0;
      dot += dp * probs[base + j];
    }
    for (let j = 0; j < seq; j++) {
      const dp = keep[base + j] ? dProbsDropped[base + j] / (1 - p) : 0;
      d[base + j] = probs[base + j] * (dp - dot);
    }
  }
  return d;
}
