/**
 * Float64 references for `kernels/loss.ts`: softmax cross-entropy (classification) and squared error
 * (STS-B regression), per-example losses plus the gradient of their mean.
 * @module
 */

/**
 * Per-example cross-entropy `−log softmax(logits[b])[labels[b]]` and `dLogits = (softmax − onehot)/batch`.
 * A label outside [0, classes) gives a NaN loss and NaN gradients for that row (as the GPU kernel).
 *
 * @example
 * ```ts
 * const { losses, dLogits } = crossEntropyRef(logits, labels, batch, 2);
 * ```
 */
export function crossEntropyRef(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  batch: number,
  classes: number,
): { losses: Float64Array; dLogits: Float64Array } {
  const losses = new Float64Array(batch), dLogits = new Float64Array(batch * classes);
  for (let b = 0; b < batch; b++) {
    const base = b * classes, label = labels[b];
    if (!(Number.isInteger(label) && label >= 0 && label < classes)) {
      losses[b] = NaN;
      dLogits.fill(NaN, base, base + classes);
      continue;
    }
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[base + c]);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[base + c] - max);
    losses[b] = Math.log(sum) + max - logits[base + label];
    for (let c = 0; c < classes; c++) {
      dLogits[base + c] = (Math.exp(logits[base + c] - max) / sum - (c === label ? 1 : 0)) / batch;
    }
  }
  return { losses, dLogits };
}

/** Per-example squared error `(pred − target)²` and `dPreds = 2(pred − target)/batch`. */
export function meanSquaredErrorRef(
  preds: ArrayLike<number>,
  targets: ArrayLike<number>,
  batch: number,
): { losses: Float64Array; dPreds: Float64Array } {
  const losses = new Float64Array(batch), dPreds = new Float64Array(batch);
  for (let b = 0; b < batch; b++) {
    const d = preds[b] - targets[b];
    losses[b] = d * d;
    dPreds[b] = 2 * d / batch;
  }
  return { losses, dPreds };
}
