import { ok, strictEqual, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import { attentionSoftmax, attentionSoftmaxBackward } from "../kernels/attention_softmax.ts";
import { attentionSoftmaxBackwardRef, attentionSoftmaxRef } from "../kernels/reference/attention_softmax.ts";
import { dropoutMaskRef } from "../kernels/reference/dropout.ts";
import { assertClose, poison, randomF32, randomF64 } from "./util.ts";

/** keyMask with batch b having `b` padded keys at the end (batch 1 all padded when seq is small). */
function makeMask(batch: number, seq: number, allPaddedBatch = -1): Float32Array {
  const m = new Float32Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < seq; j++) m[b * seq + j] = b === allPaddedBatch ? 0 : j < seq - b ? 1 : 0;
  }
  return m;
}

Deno.test("attention softmax reference: backward (with dropout) matches float64 finite differences", () => {
  const batch = 2, heads = 2, seq = 3, p = 0.3;
  const key = [11, 4, 2, 9] as const;
  const n = batch * heads * seq * seq;
  const scores = randomF64(n, 1, -3, 3);
  const mask = makeMask(batch, seq);
  const w = randomF64(n, 2);
  const loss = (s: Float64Array) =>
    attentionSoftmaxRef(s, mask, batch, heads, seq, p, key).probsDropped.reduce((a, v, i) => a + v * w[i], 0);
  const { probs } = attentionSoftmaxRef(scores, mask, batch, heads, seq, p, key);
  const d = attentionSoftmaxBackwardRef(w, probs, batch, heads, seq, p, key);
  const h = 1e-6;
  for (let i = 0; i < n; i++) {
    const sp = scores.slice(), sm = scores.slice();
    sp[i] += h;
    sm[i] -= h;
    const fd = (loss(sp) - loss(sm)) / (2 * h);
    ok(Math.abs(fd - d[i]) < 1e-8, `dScores[${i}]: ${d[i]} vs finite difference ${fd}`);
  }
});

Deno.test("attention softmax: GPU matches the float64 reference (masks, all-padding rows, dropout)", async () => {
  const gpu = await getGpu();
  const cases = [
    [1, 1, 1, 0, -1],
    [2, 3, 5, 0, 1],
    [3, 2, 17, 0.25, 2],
    [2, 1, 33, 0.1, -1],
    // seq % 4 == 0: the texture-staged kernels; 3·2·36·36 scores span several rows of the staging texture
    [3, 2, 36, 0.2, 1],
    [2, 3, 8, 0, 0],
  ] as const;
  for (const [batch, heads, seq, p, allPad] of cases) {
    const n = batch * heads * seq * seq;
    const key = [seq, 4, batch, 77] as const;
    const scores = randomF32(n, seq, -8, 8), dpd = randomF32(n, seq + 1);
    const mask = makeMask(batch, seq, allPad);
    const sb = gpu.upload(scores), mb = gpu.upload(mask), dpdb = gpu.upload(dpd);
    const probs = gpu.upload(poison(n)),
      probsDropped = gpu.upload(poison(n)),
      dScores = gpu.upload(poison(n));
    const rec = new Recorder(gpu);
    const common = { batch, heads, seq, dropout: p, dropKey: key };
    attentionSoftmax(rec, { scores: sb, keyMask: mb, probs, probsDropped, ...common });
    attentionSoftmaxBackward(rec, { dProbsDropped: dpdb, probs, dScores, ...common });
    const gp = await rec.read(probs, n);
    const gpd = await gpu.read(probsDropped, n);
    const gds = await gpu.read(dScores, n);
    const want = attentionSoftmaxRef(scores, mask, batch, heads, seq, p, key);
    const what = `${batch}x${heads}x${seq} p=${p}`;
    assertClose(gp, want.probs, 1e-5, `probs ${what}`);
    assertClose(gpd, want.probsDropped, 1e-5, `probsDropped ${what}`);
    // the backward is fed the GPU's probs, so only its own rounding is measured
    assertClose(
      gds,
      attentionSoftmaxBackwardRef(dpd, gp, batch, heads, seq, p, key),
      1e-5,
      `dScores ${what}`,
    );
    // padded keys are exactly zero except in all-padding batches; dropped entries are exactly zero
    for (let i = 0; i < n; i++) {
      const b = Math.floor(i / (heads * seq * seq)), j = i % seq;
      if (mask[b * seq + j] === 0 && b !== allPad) strictEqual(gp[i], 0, `padded key prob at ${i}`);
      if (want.probsDropped[i] === 0) strictEqual(gpd[i], 0, `dropped prob at ${i}`);
    }
    for (const b of [sb, mb, dpdb, probs, probsDropped, dScores]) b.destroy();
  }
});

Deno.test("attention softmax: the first query rows alone match the whole tensor's rows, dropout masks included", async () => {
  const gpu = await getGpu();
  // [batch, heads, seq, p, queries]: seq 36 takes the texture-staged kernels; queries 3 is the general case
  for (
    const [batch, heads, seq, p, queries] of [[2, 3, 17, 0.25, 1], [3, 2, 36, 0.2, 1], [2, 2, 8, 0.3, 3]]
  ) {
    const key = [seq, 5, batch, queries] as const;
    const whole = batch * heads * seq * seq, n = batch * heads * queries * seq;
    const full = randomF32(whole, seq + 7, -8, 8), dFull = randomF32(whole, seq + 8);
    // the held rows: query positions 0..queries-1 of every (batch, head)
    const held = (f: ArrayLike<number>) => {
      const out = new Float64Array(n);
      for (let bh = 0; bh < batch * heads; bh++) {
        for (let q = 0; q < queries; q++) {
          for (let j = 0; j < seq; j++) out[(bh * queries + q) * seq + j] = f[(bh * seq + q) * seq + j];
        }
      }
      return out;
    };
    const scores = new Float32Array(held(full)), dpd = new Float32Array(held(dFull));
    const mask = makeMask(batch, seq, -1);
    const sb = gpu.upload(scores), mb = gpu.upload(mask), dpdb = gpu.upload(dpd);
    const probs = gpu.upload(poison(n)),
      probsDropped = gpu.upload(poison(n)),
      dScores = gpu.upload(poison(n));
    const rec = new Recorder(gpu);
    const common = { batch, heads, seq, queries, dropout: p, dropKey: key };
    attentionSoftmax(rec, { scores: sb, keyMask: mb, probs, probsDropped, ...common });
    attentionSoftmaxBackward(rec, { dProbsDropped: dpdb, probs, dScores, ...common });
    const gpd = await rec.read(probsDropped, n), gds = await gpu.read(dScores, n);
    const want = attentionSoftmaxRef(full, mask, batch, heads, seq, p, key);
    const what = `${batch}x${heads}x${queries}q${seq} p=${p}`;
    assertClose(await gpu.read(probs, n), held(want.probs), 1e-5, `probs ${what}`);
    assertClose(gpd, held(want.probsDropped), 1e-5, `probsDropped ${what}`);
    const wantD = held(attentionSoftmaxBackwardRef(dFull, want.probs, batch, heads, seq, p, key));
    assertClose(gds, wantD, 1e-5, `dScores ${what}`);
    assertClose(
      attentionSoftmaxRef(scores, mask, batch, heads, seq, p, key, queries).probsDropped,
      held(want.probsDropped),
      1e-12,
      `the reference's queries ${what}`,
    );
    // a mask keyed by the held tensor's own flat index would differ somewhere
    const own = dropoutMaskRef(n, p, key), wp = held(want.probs);
    ok(own.some((k, i) => wp[i] !== 0 && (k === 0) !== (gpd[i] === 0)), `own-index mask differs ${what}`);
    for (const b of [sb, mb, dpdb, probs, probsDropped, dScores]) b.destroy();
  }
});

Deno.test("attention softmax: bad arguments are rejected", async () => {
  const gpu = await getGpu();
  const s = gpu.buffer(4 * 2 * 2 * 4), m = gpu.buffer(2 * 2 * 4), pr = gpu.buffer(16 * 4);
  const rec = new Recorder(gpu);
  throws(
    () => attentionSoftmax(rec, { scores: s, keyMask: m, probs: pr, batch: 2, heads: 2, seq: 2, queries: 3 }),
    /attentionSoftmax: queries must be an integer in \[1, seq = 2\], got 3/,
  );
  throws(
    () => attentionSoftmax(rec, { scores: s, keyMask: m, probs: pr, batch: 2, heads: 2, seq: 3 }),
    /attentionSoftmax: buffer scores has 64 bytes but 36 elements/,
  );
  throws(
    () =>
      attentionSoftmax(rec, { scores: s, keyMask: m, probs: pr, batch: 1, heads: 1, seq: 2, dropout: 0.1 }),
    /attentionSoftmax: dropout key must be four u32 words/,
  );
  throws(
    () => attentionSoftmax(rec, { scores: s, keyMask: m, probs: pr, batch: 1, heads: 1, seq: 2, dropout: 1 }),
    /attentionSoftmax: dropout rate must be in \[0, 1\)/,
  );
  throws(
    () =>
      attentionSoftmaxBackward(rec, { dProbsDropped: s, probs: pr, dScores: pr, batch: 1, heads: 1, seq: 2 }),
    /probs and dScores must be different/,
  );
});
