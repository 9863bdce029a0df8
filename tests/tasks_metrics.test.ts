import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import {
  accuracy,
  averageRanks,
  f1Score,
  glueMetrics,
  matthewsCorrelation,
  pearson,
  predictionsFromLogits,
  spearman,
} from "../tasks/metrics.ts";
import { GLUE_TASK_NAMES, glueTask } from "../tasks/registry.ts";

/** |got - want| <= 1e-12 · max(1, |want|), and never NaN. */
function near(got: number, want: number, what: string): void {
  ok(Number.isFinite(got), `${what}: got ${got}`);
  ok(Math.abs(got - want) <= 1e-12 * Math.max(1, Math.abs(want)), `${what}: got ${got}, want ${want}`);
}

Deno.test("accuracy: hand-counted", () => {
  // pred 1 0 1 1 0 vs gold 1 1 1 0 0: matches at 0, 2, 4 → 3/5.
  near(accuracy([1, 0, 1, 1, 0], [1, 1, 1, 0, 0]), 3 / 5, "accuracy");
  near(accuracy(new Int32Array([2, 2]), new Int32Array([2, 2])), 1, "all right");
  near(accuracy([0, 0], [1, 1]), 0, "all wrong");
});

Deno.test("f1: hand-counted, and 0 when nothing positive is (correctly) predicted", () => {
  // pred 1 1 0 1 0 0, gold 1 0 1 1 0 1: TP = {0,3} = 2, FP = {1} = 1, FN = {2,5} = 2.
  // precision 2/3, recall 2/4; F1 = 2·TP/(2·TP+FP+FN) = 4/7.
  near(f1Score([1, 1, 0, 1, 0, 0], [1, 0, 1, 1, 0, 1]), 4 / 7, "f1");
  // Positive class 0 instead: TP = {4} = 1, FP = {2,5} = 2, FN = {1} = 1 → 2/(2+2+1) = 2/5.
  near(f1Score([1, 1, 0, 1, 0, 0], [1, 0, 1, 1, 0, 1], 0), 2 / 5, "f1 of class 0");
  near(f1Score([0, 0, 0], [1, 0, 1]), 0, "no positive predicted");
  near(f1Score([0, 0, 0], [0, 0, 0]), 0, "no positives at all (sklearn: 0)");
  near(f1Score([1, 1], [0, 0]), 0, "only false positives");
  near(f1Score([1, 0, 1], [1, 0, 1]), 1, "perfect");
});

Deno.test("mcc: hand-computed binary and multiclass values, 0 on constant inputs", () => {
  // pred 1 1 1 0 0 0 1 0, gold 1 1 0 0 0 1 1 0: TP = {0,1,6} = 3, FP = {2} = 1, TN = {3,4,7} = 3, FN = {5} = 1.
  // MCC = (3·3 − 1·1) / sqrt((3+1)(3+1)(3+1)(3+1)) = 8/16 = 0.5.
  near(matthewsCorrelation([1, 1, 1, 0, 0, 0, 1, 0], [1, 1, 0, 0, 0, 1, 1, 0]), 0.5, "mcc binary");
  // pred 1 1 0 0, gold 1 0 0 0: TP 1, FP 1, TN 2, FN 0 → (1·2 − 0)/sqrt(2·1·3·2) = 2/sqrt(12) = 1/sqrt(3).
  near(matthewsCorrelation([1, 1, 0, 0], [1, 0, 0, 0]), 1 / Math.sqrt(3), "mcc small");
  // Three classes: gold 0 1 2 0 1 2, pred 0 2 1 0 0 2. s = 6, correct c = 3 (rows 0, 3, 5),
  // true counts t = (2,2,2), predicted counts p = (3,1,2): Σ t·p = 6+2+4 = 12, Σ p² = 14, Σ t² = 12.
  // MCC = (c·s − Σ t·p) / sqrt((s² − Σ p²)(s² − Σ t²)) = (18 − 12)/sqrt(22·24) = 6/sqrt(528).
  near(matthewsCorrelation([0, 2, 1, 0, 0, 2], [0, 1, 2, 0, 1, 2]), 6 / Math.sqrt(528), "mcc 3 classes");
  near(matthewsCorrelation([1, 0, 1], [1, 0, 1]), 1, "perfect");
  near(matthewsCorrelation([0, 1, 0], [1, 0, 1]), -1, "inverted");
  // Degenerate: constant predictions or constant labels → 0 (as sklearn), never NaN.
  near(matthewsCorrelation([1, 1, 1, 1], [1, 0, 1, 0]), 0, "constant predictions");
  near(matthewsCorrelation([1, 0, 1, 0], [0, 0, 0, 0]), 0, "constant labels");
  near(matthewsCorrelation([1, 1], [1, 1]), 0, "both constant");
});

Deno.test("mcc: the multiclass form equals the binary closed form on seeded random labels", () => {
  const r = new KeyedRandom([11, Purpose.test]);
  for (const n of [1, 2, 7, 100, 1001]) {
    const p = Array.from({ length: n }, () => (r.uniform() < 0.6 ? 1 : 0));
    const g = Array.from({ length: n }, () => (r.uniform() < 0.3 ? 1 : 0));
    let tp = 0, fp = 0, tn = 0, fn = 0;
    for (let i = 0; i < n; i++) {
      if (p[i] && g[i]) tp++;
      else if (p[i]) fp++;
      else if (g[i]) fn++;
      else tn++;
    }
    const den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn);
    const want = den === 0 ? 0 : (tp * tn - fp * fn) / Math.sqrt(den);
    near(matthewsCorrelation(p, g), want, `mcc n=${n}`);
  }
});

Deno.test("pearson and spearman: hand-computed, ties get average ranks, constants give 0", () => {
  // x 1 2 3, y 2 4 7: means 2 and 13/3; dx = (−1,0,1), dy = (−7/3,−1/3,8/3);
  // Σdx·dy = 7/3 + 8/3 = 5, Σdx² = 2, Σdy² = (49+1+64)/9 = 114/9; r = 5/sqrt(2·114/9) = 15/sqrt(228).
  near(pearson([1, 2, 3], [2, 4, 7]), 15 / Math.sqrt(228), "pearson");
  near(pearson([1, 2, 3, 4], [8, 6, 4, 2]), -1, "pearson exact negative");
  near(pearson([1, 2, 3], [5, 5, 5]), 0, "pearson constant y (scipy: NaN, here 0)");
  near(pearson([3, 3], [1, 2]), 0, "pearson constant x");
  near(pearson([7], [3]), 0, "pearson single point");

  // averageRanks: 10,10 take ranks 1,2 → 1.5; 20,20,20 take 3,4,5 → 4; 30 takes 6.
  deepStrictEqual([...averageRanks([10, 20, 10, 30, 20, 20])], [1.5, 4, 1.5, 6, 4, 4]);
  deepStrictEqual([...averageRanks([3, 1, 2])], [3, 1, 2]);

  // x 1 2 2 3 → ranks 1 2.5 2.5 4; y 1 3 2 4 → ranks 1 3 2 4; both mean 2.5.
  // dx = (−1.5,0,0,1.5), dy = (−1.5,0.5,−0.5,1.5): Σdx·dy = 4.5, Σdx² = 4.5, Σdy² = 5 → 4.5/sqrt(22.5) = 3/sqrt(10).
  near(spearman([1, 2, 2, 3], [1, 3, 2, 4]), 3 / Math.sqrt(10), "spearman with ties");
  near(spearman([1, 2, 3, 4], [1, 8, 27, 64]), 1, "spearman monotone");
  near(spearman([1, 2, 3, 4], [0.5, 0.4, 0.1, -3]), -1, "spearman antitone");
  near(spearman([4, 4, 4], [1, 2, 3]), 0, "spearman constant");
});

Deno.test("glueMetrics: each task reports its registered metrics, finite on random and degenerate inputs", () => {
  // mrpc: pred 1 0 1 1, gold 1 0 0 1: accuracy 3/4; TP 2, FP 1, FN 0 → F1 = 4/5.
  const m = glueMetrics("mrpc", [1, 0, 1, 1], [1, 0, 0, 1]);
  deepStrictEqual(Object.keys(m), ["accuracy", "f1"]);
  near(m.accuracy, 0.75, "mrpc accuracy");
  near(m.f1, 0.8, "mrpc f1");
  const c = glueMetrics("cola", [1, 1, 1, 0, 0, 0, 1, 0], [1, 1, 0, 0, 0, 1, 1, 0]);
  near(c.mcc, 0.5, "cola mcc");
  near(c.accuracy, 6 / 8, "cola accuracy");
  const s = glueMetrics("stsb", [1, 2, 2, 3], [1, 3, 2, 4]);
  // pearson of (1,2,2,3) and (1,3,2,4): means 2, 2.5; dx (−1,0,0,1), dy (−1.5,0.5,−0.5,1.5);
  // Σdx·dy = 3, Σdx² = 2, Σdy² = 5 → 3/sqrt(10); spearman from the test above is also 3/sqrt(10).
  near(s.pearson, 3 / Math.sqrt(10), "stsb pearson");
  near(s.spearman, 3 / Math.sqrt(10), "stsb spearman");
  near(glueMetrics("mnli", [0, 1, 2, 2], [0, 1, 2, 0]).accuracy, 0.75, "mnli accuracy");

  const r = new KeyedRandom([12, Purpose.test]);
  for (const name of GLUE_TASK_NAMES) {
    const t = glueTask(name);
    for (const n of [1, 5, 64]) {
      const draw = () =>
        t.regression ? 5 * r.uniform() : Math.min(t.numLabels - 1, Math.floor(r.uniform() * t.numLabels));
      const gold = Array.from({ length: n }, draw);
      for (const pred of [Array.from({ length: n }, draw), new Array(n).fill(0)]) {
        const out = glueMetrics(name, pred, gold);
        deepStrictEqual(Object.keys(out), [...t.metrics], name);
        for (const [k, v] of Object.entries(out)) {
          ok(Number.isFinite(v) && v >= -1 && v <= 1, `${name} ${k} = ${v} (n=${n})`);
        }
      }
    }
  }
});

Deno.test("metrics: bad input is a clear error", () => {
  throws(() => glueMetrics("mrpc", [1, 0], [1]), /mrpc metrics: 2 predictions but 1 labels/);
  throws(() => glueMetrics("sst2", [], []), /sst2 metrics: no examples/);
  throws(() => glueMetrics("stsb", [1, NaN], [1, 2]), /prediction 1 is NaN/);
  throws(() => glueMetrics("rte", [0, 0.5], [0, 1]), /prediction 1 is 0.5, expected a class id/);
  throws(() => glueMetrics("rte", [0, 1], [0, -1]), /label 1 is -1, expected a class id/);
  throws(() => glueMetrics("RTE", [0], [0]), /unknown GLUE task "RTE"; known tasks: cola/);
  throws(() => pearson([1, 2], [1, Infinity]), /label 1 is Infinity/);
  throws(() => matthewsCorrelation([0.5], [1]), /mcc: prediction 0 is 0.5/);
});

Deno.test("predictionsFromLogits: arg-max per row (first on ties), identity for one output", () => {
  // rows (0.1, 0.9) → 1; (0.5, 0.5) tie → 0; (−1, −2) → 0; (0, 3) → 1.
  deepStrictEqual([...predictionsFromLogits(new Float32Array([0.1, 0.9, 0.5, 0.5, -1, -2, 0, 3]), 2)], [
    1,
    0,
    0,
    1,
  ]);
  deepStrictEqual([...predictionsFromLogits([0.2, 0.1, 0.7, 3, 1, 2], 3)], [2, 0]);
  deepStrictEqual([...predictionsFromLogits([2.5, -1], 1)], [2.5, -1]);
  strictEqual(predictionsFromLogits([], 2).length, 0);
  throws(() => predictionsFromLogits([1, 2, 3], 2), /3 outputs is not a multiple of numLabels 2/);
  throws(() => predictionsFromLogits([1, NaN], 2), /output \[0, 1\] is NaN/);
  throws(() => predictionsFromLogits([1, NaN], 1), /output \[1, 0\] is NaN/);
  throws(() => predictionsFromLogits([1], 0), /numLabels 0/);
});
