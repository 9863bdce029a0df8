/**
 * GLUE evaluation metrics in float64: accuracy, F1 of the positive class, Matthews correlation, Pearson and
 * Spearman correlation. Degenerate inputs (a constant prediction or label vector) give 0, never NaN; bad
 * input (length mismatch, empty, non-finite values, non-integer class ids) is an error.
 *
 * @example
 * ```ts
 * import { glueMetrics } from "./metrics.ts";
 * glueMetrics("mrpc", [1, 0, 1, 1], [1, 0, 0, 1]); // { accuracy: 0.75, f1: 0.8 }
 * ```
 * @module
 */
import { glueTask } from "./registry.ts";

/** A sequence of numbers: plain array or any typed array. */
export type Numbers = ArrayLike<number>;

function checkPair(pred: Numbers, gold: Numbers, what: string): void {
  if (pred.length !== gold.length) {
    throw new Error(`${what}: ${pred.length} predictions but ${gold.length} labels`);
  }
  if (pred.length === 0) throw new Error(`${what}: no examples (empty predictions and labels)`);
  for (let i = 0; i < pred.length; i++) {
    if (!Number.isFinite(pred[i])) {
      throw new Error(`${what}: prediction ${i} is ${pred[i]}, expected a finite number`);
    }
    if (!Number.isFinite(gold[i])) {
      throw new Error(`${what}: label ${i} is ${gold[i]}, expected a finite number`);
    }
  }
}

function checkClassIds(xs: Numbers, what: string, kind: string): void {
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isInteger(xs[i]) || xs[i] < 0) {
      throw new Error(`${what}: ${kind} ${i} is ${xs[i]}, expected a class id (integer >= 0)`);
    }
  }
}

/**
 * Fraction of predictions equal to the labels.
 * @example
 * ```ts
 * accuracy([1, 0, 1], [1, 1, 1]); // 2/3
 * ```
 */
export function accuracy(predictions: Numbers, labels: Numbers): number {
  checkPair(predictions, labels, "accuracy");
  let hit = 0;
  for (let i = 0; i < labels.length; i++) if (predictions[i] === labels[i]) hit++;
  return hit / labels.length;
}

/**
 * F1 score of the class `positive` (default 1): 2·TP / (2·TP + FP + FN), and 0 when TP = 0 (as scikit-learn
 * reports when nothing, or nothing correct, is predicted positive).
 */
export function f1Score(predictions: Numbers, labels: Numbers, positive = 1): number {
  checkPair(predictions, labels, "f1");
  let tp = 0, fp = 0, fn = 0;
  for (let i = 0; i < labels.length; i++) {
    const p = predictions[i] === positive, g = labels[i] === positive;
    if (p && g) tp++;
    else if (p) fp++;
    else if (g) fn++;
  }
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
}

/**
 * Matthews correlation coefficient for class ids (any number of classes; the binary case is
 * (TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))). Returns 0 when predictions or labels are constant,
 * like scikit-learn's `matthews_corrcoef`.
 * @example
 * ```ts
 * matthewsCorrelation([1, 1, 0, 0], [1, 0, 0, 0]); // 1/sqrt(3)
 * ```
 */
export function matthewsCorrelation(predictions: Numbers, labels: Numbers): number {
  checkPair(predictions, labels, "mcc");
  checkClassIds(predictions, "mcc", "prediction");
  checkClassIds(labels, "mcc", "label");
  // Multiclass form (Gorodkin 2004): with s samples, c correct, t_k true counts and p_k predicted counts,
  // MCC = (c·s − Σ t_k p_k) / sqrt((s² − Σ p_k²)(s² − Σ t_k²)).
  const t = new Map<number, number>(), p = new Map<number, number>();
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    t.set(labels[i], (t.get(labels[i]) ?? 0) + 1);
    p.set(predictions[i], (p.get(predictions[i]) ?? 0) + 1);
    if (predictions[i] === labels[i]) correct++;
  }
  const s = labels.length;
  let tp = 0, pp = 0, tt = 0;
  for (const [k, tk] of t) {
    tp += tk * (p.get(k) ?? 0);
    tt += tk * tk;
  }
  for (const pk of p.values()) pp += pk * pk;
  const den = (s * s - pp) * (s * s - tt);
  return den === 0 ? 0 : (correct * s - tp) / Math.sqrt(den);
}

/**
 * Pearson correlation coefficient; 0 when either input is constant (scipy would give NaN).
 * @example
 * ```ts
 * pearson([1, 2, 3], [2, 4, 7]); // 0.9933992677987828
 * ```
 */
export function pearson(x: Numbers, y: Numbers): number {
  checkPair(x, y, "pearson");
  const n = x.length;
  let mx = 0, my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return 0;
  const r = sxy / Math.sqrt(sxx * syy);
  return Math.max(-1, Math.min(1, r));
}

/**
 * Ranks 1..n of the values in ascending order; tied values all get the average of the ranks they span.
 * @example
 * ```ts
 * averageRanks([10, 20, 10, 30]); // [1.5, 3, 1.5, 4]
 * ```
 */
export function averageRanks(x: Numbers): Float64Array {
  const n = x.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => x[i] - x[j]);
  const ranks = new Float64Array(n);
  for (let lo = 0; lo < n;) {
    let hi = lo + 1;
    while (hi < n && x[order[hi]] === x[order[lo]]) hi++;
    const r = (lo + 1 + hi) / 2; // mean of the 1-based ranks lo+1 .. hi
    for (let k = lo; k < hi; k++) ranks[order[k]] = r;
    lo = hi;
  }
  return ranks;
}

/** Spearman rank correlation: Pearson of the average ranks (ties averaged); 0 when either input is constant. */
export function spearman(x: Numbers, y: Numbers): number {
  checkPair(x, y, "spearman");
  return pearson(averageRanks(x), averageRanks(y));
}

/**
 * The metrics registered for a task (see tasks/registry.ts), keyed by metric name.
 * @param task lower-case task name
 * @param predictions class ids, or float scores for regression (STS-B)
 * @param labels gold class ids, or gold scores for regression
 * @example
 * ```ts
 * glueMetrics("stsb", [0.5, 2.5, 4.0], [1.0, 2.0, 4.8]); // { pearson: ..., spearman: 1 }
 * ```
 */
export function glueMetrics(task: string, predictions: Numbers, labels: Numbers): Record<string, number> {
  const spec = glueTask(task);
  checkPair(predictions, labels, `${spec.name} metrics`);
  if (!spec.regression) {
    checkClassIds(predictions, `${spec.name} metrics`, "prediction");
    checkClassIds(labels, `${spec.name} metrics`, "label");
  }
  const out: Record<string, number> = {};
  for (const m of spec.metrics) {
    switch (m) {
      case "accuracy":
        out[m] = accuracy(predictions, labels);
        break;
      case "f1":
        out[m] = f1Score(predictions, labels, 1);
        break;
      case "mcc":
        out[m] = matthewsCorrelation(predictions, labels);
        break;
      case "pearson":
        out[m] = pearson(predictions, labels);
        break;
      case "spearman":
        out[m] = spearman(predictions, labels);
        break;
    }
  }
  return out;
}

/**
 * Turns a row-major `[n, numLabels]` output matrix into predictions: the arg-max class id per row (the first
 * maximum on ties), or the single output itself when `numLabels` is 1 (regression).
 * @throws Error when the length is not a multiple of `numLabels` or an output is NaN.
 */
export function predictionsFromLogits(logits: Numbers, numLabels: number): Float64Array {
  if (!Number.isInteger(numLabels) || numLabels < 1) {
    throw new Error(`predictionsFromLogits: numLabels ${numLabels} must be a positive integer`);
  }
  if (logits.length % numLabels !== 0) {
    throw new Error(
      `predictionsFromLogits: ${logits.length} outputs is not a multiple of numLabels ${numLabels}`,
    );
  }
  const n = logits.length / numLabels;
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let best = 0;
    for (let k = 0; k < numLabels; k++) {
      const v = logits[r * numLabels + k];
      if (Number.isNaN(v)) throw new Error(`predictionsFromLogits: output [${r}, ${k}] is NaN`);
      if (v > logits[r * numLabels + best]) best = k;
    }
    out[r] = numLabels === 1 ? logits[r] : best;
  }
  return out;
}
