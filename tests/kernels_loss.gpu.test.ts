import { ok, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import { crossEntropy, meanSquaredError } from "../kernels/loss.ts";
import { crossEntropyRef, meanSquaredErrorRef } from "../kernels/reference/loss.ts";
import { assertClose, poison, randomF32, randomF64 } from "./util.ts";

Deno.test("loss reference: gradients of the mean loss match float64 finite differences", () => {
  const batch = 3, classes = 4;
  const logits = randomF64(batch * classes, 1, -3, 3);
  const labels = [2, 0, 3];
  const mean = (l: Float64Array) =>
    crossEntropyRef(l, labels, batch, classes).losses.reduce((a, b) => a + b) / batch;
  const { dLogits } = crossEntropyRef(logits, labels, batch, classes);
  const preds = randomF64(batch, 2), targets = randomF64(batch, 3);
  const mse = (p: Float64Array) =>
    meanSquaredErrorRef(p, targets, batch).losses.reduce((a, b) => a + b) / batch;
  const { dPreds } = meanSquaredErrorRef(preds, targets, batch);
  const h = 1e-6;
  for (let i = 0; i < logits.length; i++) {
    const lp = logits.slice(), lm = logits.slice();
    lp[i] += h;
    lm[i] -= h;
    const fd = (mean(lp) - mean(lm)) / (2 * h);
    ok(Math.abs(fd - dLogits[i]) < 1e-8, `dLogits[${i}] ${dLogits[i]} vs ${fd}`);
  }
  for (let i = 0; i < batch; i++) {
    const pp = preds.slice(), pm = preds.slice();
    pp[i] += h;
    pm[i] -= h;
    const fd = (mse(pp) - mse(pm)) / (2 * h);
    ok(Math.abs(fd - dPreds[i]) < 1e-8, `dPreds[${i}] ${dPreds[i]} vs ${fd}`);
  }
});

Deno.test("loss: GPU cross-entropy and squared error match the float64 reference", async () => {
  const gpu = await getGpu();
  for (const [batch, classes, seed] of [[1, 1, 1], [3, 2, 2], [17, 3, 3], [70, 5, 4]] as const) {
    const logits = randomF32(batch * classes, seed, -20, 20);
    const labels = Int32Array.from({ length: batch }, (_, b) => (b * 7 + seed) % classes);
    const preds = randomF32(batch, seed + 1, 0, 5), targets = randomF32(batch, seed + 2, 0, 5);
    const lb = gpu.upload(logits), lab = gpu.upload(labels), pb = gpu.upload(preds), tb = gpu.upload(targets);
    const losses = gpu.upload(poison(batch)), dLogits = gpu.upload(poison(batch * classes));
    const mLosses = gpu.upload(poison(batch)), dPreds = gpu.upload(poison(batch));
    const rec = new Recorder(gpu);
    crossEntropy(rec, { logits: lb, labels: lab, losses, dLogits, batch, classes });
    meanSquaredError(rec, { preds: pb, targets: tb, losses: mLosses, dPreds, batch });
    const gl = await rec.read(losses, batch);
    const gd = await gpu.read(dLogits, batch * classes);
    const gml = await gpu.read(mLosses, batch), gdp = await gpu.read(dPreds, batch);
    const ce = crossEntropyRef(logits, labels, batch, classes);
    const mse = meanSquaredErrorRef(preds, targets, batch);
    const what = `${batch}x${classes}`;
    // losses near 0 (confident correct rows) are compared relative to the largest loss of the batch
    assertClose(gl, ce.losses, 1e-5, `cross-entropy losses ${what}`);
    assertClose(gd, ce.dLogits, 1e-5, `dLogits ${what}`);
    assertClose(gml, mse.losses, 1e-5, `squared error ${what}`);
    assertClose(gdp, mse.dPreds, 1e-5, `dPreds ${what}`);
    for (const b of [lb, lab, pb, tb, losses, dLogits, mLosses, dPreds]) b.destroy();
  }
});

Deno.test("loss: an invalid label gives NaN for that row only; bad sizes are rejected", async () => {
  const gpu = await getGpu();
  const logits = randomF32(6, 5);
  const lb = gpu.upload(logits), lab = gpu.upload(Int32Array.from([1, 3, -1]));
  const losses = gpu.upload(poison(3)), dLogits = gpu.upload(poison(6));
  const rec = new Recorder(gpu);
  crossEntropy(rec, { logits: lb, labels: lab, losses, dLogits, batch: 3, classes: 2 });
  const gl = await rec.read(losses, 3);
  ok(Number.isFinite(gl[0]) && Number.isNaN(gl[1]) && Number.isNaN(gl[2]), `losses ${gl}`);
  throws(
    () => crossEntropy(rec, { logits: lb, labels: lab, losses, dLogits, batch: 3, classes: 3 }),
    /crossEntropy: buffer logits has 24 bytes but 9 elements/,
  );
  throws(
    () => meanSquaredError(rec, { preds: lb, targets: lb, losses, dPreds: losses, batch: 3 }),
    /meanSquaredError: preds and targets must be different|losses and dPreds must be different/,
  );
  for (const b of [lb, lab, losses, dLogits]) b.destroy();
});
