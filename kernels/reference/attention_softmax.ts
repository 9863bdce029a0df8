/**
 * Float64 reference for `kernels/attention_softmax.ts`: key-masked softmax over the last axis of
 * scores [batch, heads, seq, seq], optional attention dropout, and the backward pass.
 * @module
 */
import { keepKey } from "../rng.ts";

/**
 * Keep mask (1/0) of scores [batch, heads, queries, seq] holding the first `queries` query rows: each element
 * takes the mask of its place in the whole [batch, heads, seq, seq] tensor.
 */
function attentionKeepRef(
  rows: number,
  seq: number,
  queries: number,
  p: number,
  key: readonly [number, number, number, number],
): Uint8Array {
  const pf = Math.fround(p);
  const keep = new Uint8Array(rows * seq);
  for (let r = 0; r < rows; r++) {
    const hbase = (Math.floor(r / queries) * seq + r % queries) * seq;
    for (let j = 0; j < seq; j++) {
      keep[r * seq + j] = pf === 0 || keepKey(pf, key[0], key[1], key[2], key[3], hbase + j) ? 1 : 0;
    }
  }
  return keep;
}

/**
 * Masked softmax: padded keys (keyMask 0) get probability exactly 0; a row whose keys are all padding is
 * uniform 1/seq (the limit of HF's additive finfo.min mask). Returns probs and, when p > 0, probsDropped.
 * With `queries` < seq the scores are [batch, heads, queries, seq] (the first query rows) and keep the dropout
 * masks of their places in the whole tensor, as the kernel does.
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
  queries = seq,
): { probs: Float64Array; probsDropped: Float64Array } {
  const n = batch * heads * queries * seq;
  const probs = new Float64Array(n);
  for (let b = 0; b < batch; b++) {
    for (let row = 0; row < heads * queries; row++) {
      const base = (b * heads * queries + row) * seq;
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
  const keep = attentionKeepRef(batch * heads * queries, seq, queries, p, key);
  for (let i = 0; i < n; i++) probsDropped[i] = keep[i] ? probs[i] / (1 - p) : 0;
  return { probs, probsDropped };
}

/** Backward: dP = dropout'(dProbsDropped); dScores = P ⊙ (dP − Σ_j dP ⊙ P) per row (`queries` as forward). */
export function attentionSoftmaxBackwardRef(
  dProbsDropped: ArrayLike<number>,
  probs: ArrayLike<number>,
  batch: number,
  heads: number,
  seq: number,
  p = 0,
  key: readonly [number, number, number, number] = [0, 0, 0, 0],
  queries = seq,
): Float64Array {
  const rows = batch * heads * queries;
  const n = rows * seq;
  const keep = attentionKeepRef(rows, seq, queries, p, key);
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
