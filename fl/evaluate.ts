/**
 * Evaluation of the global model on a set of encoded examples: logits in evaluation mode (no dropout, no
 * masks), the task's metrics (a scoring function passed in) and the mean loss (cross-entropy, or MSE for regression).
 * Batches are cut from the examples sorted by length, so each pads little; the logits go back in data order.
 * @module
 */
import type { RobertaModel } from "../model/roberta.ts";
import { type EncodedExample, makeBatch } from "../model/batch.ts";
import { lengthSortedOrder } from "./batching.ts";

/** Metrics and loss of the model on `data`. */
export async function evaluate(
  model: RobertaModel,
  score: (predictions: Float64Array, labels: number[]) => Record<string, number>,
  data: readonly EncodedExample[],
  padId: number,
  batchSize: number,
): Promise<{ metrics: Record<string, number>; loss: number }> {
  const L = model.numLabels;
  const logits = new Float32Array(data.length * L);
  model.setMasks(undefined);
  const order = lengthSortedOrder(data.map((e) => e.ids.length));
  for (let s = 0; s < data.length; s += batchSize) {
    const idx = order.slice(s, s + batchSize);
    const z = await model.forward(makeBatch(data, idx, padId), { train: false });
    idx.forEach((i, row) => logits.set(z.subarray(row * L, row * L + L), i * L));
  }
  const labels = data.map((e) => e.label);
  let loss = 0;
  for (let i = 0; i < data.length; i++) {
    const z = logits.subarray(i * L, i * L + L);
    if (L === 1) loss += (z[0] - labels[i]) ** 2;
    else {
      let mx = -Infinity;
      for (const v of z) mx = Math.max(mx, v);
      let se = 0;
      for (const v of z) se += Math.exp(v - mx);
      loss += mx + Math.log(se) - z[labels[i]];
    }
  }
  const predictions = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++) {
    if (L === 1) predictions[i] = logits[i];
    else {
      let best = 0;
      for (let c = 1; c < L; c++) if (logits[i * L + c] > logits[i * L + best]) best = c;
      predictions[i] = best;
    }
  }
  return { metrics: score(predictions, labels), loss: loss / Math.max(1, data.length) };
}
