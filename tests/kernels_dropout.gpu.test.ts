import { ok, strictEqual, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import { dropout, dropoutBackward } from "../kernels/dropout.ts";
import { fill } from "../kernels/elementwise.ts";
import { dropoutBackwardRef, dropoutMaskRef, dropoutRef } from "../kernels/reference/dropout.ts";
import { keepKey } from "../kernels/rng.ts";
import { assertClose, poison, randomF32, randomF64 } from "./util.ts";

Deno.test("dropout reference: mask is keepKey, keep fraction ≈ 1 − p, backward matches finite differences", () => {
  const key = [3, 4, 5, 6] as const;
  const n = 20000;
  for (const p of [0.1, 0.5]) {
    const m = dropoutMaskRef(n, p, key);
    let kept = 0;
    for (let i = 0; i < n; i++) {
      strictEqual(m[i] === 1, keepKey(Math.fround(p), ...key, i));
      kept += m[i];
    }
    ok(Math.abs(kept / n - (1 - p)) < 0.015, `keep fraction ${kept / n} for p=${p}`);
  }
  const x = randomF64(7, 1), w = randomF64(7, 2);
  const loss = (v: Float64Array) => dropoutRef(v, 0.4, key).reduce((s, y, i) => s + y * w[i], 0);
  const d = dropoutBackwardRef(w, 0.4, key);
  for (let i = 0; i < 7; i++) {
    const xp = x.slice(), xm = x.slice();
    xp[i] += 1e-6;
    xm[i] -= 1e-6;
    ok(Math.abs((loss(xp) - loss(xm)) / 2e-6 - d[i]) < 1e-8);
  }
});

Deno.test("dropout: GPU mask equals the TypeScript keepKey mask element for element", async () => {
  const gpu = await getGpu();
  for (const [n, p, seed] of [[1, 0.5, 1], [1000, 0.1, 2], [4099, 0.3, 3], [5272, 0.2, 4]] as const) {
    const key = [seed, 4, 0xffffffff, n] as const;
    const x = randomF32(n, seed, 0.5, 1.5); // nonzero, so zeros mark dropped elements
    const dy = randomF32(n, seed + 1);
    const init = randomF32(n, seed + 2);
    const xb = gpu.upload(x), dyb = gpu.upload(dy), inPlace = gpu.upload(x);
    const y = gpu.upload(poison(n)), dx = gpu.upload(poison(n)), dxAcc = gpu.upload(init);
    const rec = new Recorder(gpu);
    dropout(rec, { x: xb, y, n, p, key });
    dropoutBackward(rec, { dy: dyb, dx, n, p, key });
    dropout(rec, { x: inPlace, y: inPlace, n, p, key });
    dropoutBackward(rec, { dy: dyb, dx: dxAcc, n, p, key, accumulate: true });
    const gy = await rec.read(y, n);
    const gdx = await gpu.read(dx, n), gacc = await gpu.read(dxAcc, n);
    const mask = dropoutMaskRef(n, p, key);
    for (let i = 0; i < n; i++) strictEqual(gy[i] !== 0, mask[i] === 1, `mask at ${i} (n=${n}, p=${p})`);
    assertClose(gy, dropoutRef(x, p, key), 1e-6, `dropout n=${n}`);
    assertClose(await gpu.read(inPlace, n), gy, 0, `in-place dropout n=${n}`);
    const wdx = dropoutBackwardRef(dy, p, key);
    assertClose(gdx, wdx, 1e-6, `dropoutBackward n=${n}`);
    assertClose(gacc, wdx.map((v, i) => v + init[i]), 1e-6, `dropoutBackward accumulate n=${n}`);
    if (n > 1000) {
      const kept = mask.reduce((s, v) => s + v, 0);
      ok(Math.abs(kept / n - (1 - p)) < 0.03, `GPU keep fraction ${kept / n} vs ${1 - p}`);
    }
    for (const b of [xb, dyb, inPlace, y, dx, dxAcc]) b.destroy();
  }
});

Deno.test("dropout: p = 0 is the identity; bad rates and keys are rejected", async () => {
  const gpu = await getGpu();
  const n = 37;
  const x = randomF32(n, 9);
  const xb = gpu.upload(x), y = gpu.upload(poison(n)), dx = gpu.upload(poison(n));
  const rec = new Recorder(gpu);
  // Recorder.submit() with only copies recorded writes a not-yet-created uniform arena (reported to the lead);
  // one ordinary dispatch first keeps this test about dropout.
  fill(rec, { x: dx, n, value: NaN });
  dropout(rec, { x: xb, y, n, p: 0, key: [0, 0, 0, 0] });
  dropoutBackward(rec, { dy: xb, dx, n, p: 0, key: [0, 0, 0, 0] });
  assertClose(await rec.read(y, n), x, 0, "p=0 forward");
  assertClose(await gpu.read(dx, n), x, 0, "p=0 backward");
  throws(
    () => dropout(rec, { x: xb, y, n, p: 1, key: [0, 0, 0, 0] }),
    /dropout: dropout rate must be in \[0, 1\)/,
  );
  throws(
    () => dropout(rec, { x: xb, y, n, p: 0.1, key: [0, 0, -1, 0] }),
    /dropout: dropout key must be four u32 words/,
  );
  throws(
    () => dropoutBackward(rec, { dy: xb, dx: xb, n, p: 0.1, key: [0, 0, 0, 0], accumulate: true }),
    /dropoutBackward: dy and dx must be different/,
  );
  throws(() => dropout(rec, { x: xb, y, n: n + 1, p: 0.1, key: [0, 0, 0, 0] }), /dropout: buffer x has/);
  for (const b of [xb, y, dx]) b.destroy();
});

Deno.test("dropout rowsOf: rows taken from a larger tensor get that tensor's mask there", async () => {
  const gpu = await getGpu();
  // [rows held, cols, every]: every = 1 is the plain kernel; ragged cols (37, 13) hit the scalar path
  for (const [rows, cols, every, p] of [[3, 37, 5, 0.3], [4, 64, 19, 0.1], [2, 8, 1, 0.5], [5, 13, 2, 0.4]]) {
    const key = [rows, 4, every, cols] as const;
    const n = rows * cols, rowsOf = { cols, every };
    const x = randomF32(n, rows + 10, 0.5, 1.5);
    const dy = randomF32(n, rows + 11);
    const init = randomF32(n, rows + 12);
    // the larger tensor: row k·every holds row k of x (and of dy), the other rows something else
    const big = (v: Float32Array) => {
      const f = randomF64(rows * every * cols, 99);
      for (let k = 0; k < rows; k++) f.set(v.subarray(k * cols, (k + 1) * cols), k * every * cols);
      return f;
    };
    const gather = (f: Float64Array) => {
      const g = new Float64Array(n);
      for (let k = 0; k < rows; k++) g.set(f.subarray(k * every * cols, k * every * cols + cols), k * cols);
      return g;
    };
    const xb = gpu.upload(x), dyb = gpu.upload(dy);
    const y = gpu.upload(poison(n)), dx = gpu.upload(poison(n)), dxAcc = gpu.upload(init);
    const rec = new Recorder(gpu);
    dropout(rec, { x: xb, y, n, p, key, rowsOf });
    dropoutBackward(rec, { dy: dyb, dx, n, p, key, rowsOf });
    dropoutBackward(rec, { dy: dyb, dx: dxAcc, n, p, key, rowsOf, accumulate: true });
    const gy = await rec.read(y, n);
    const want = gather(dropoutRef(big(x), p, key));
    assertClose(gy, want, 1e-6, `dropout rowsOf ${rows}x${cols} every ${every}`);
    for (let i = 0; i < n; i++) strictEqual(gy[i] !== 0, want[i] !== 0, `mask at ${i}`);
    assertClose(gy, dropoutRef(x, p, key, rowsOf), 1e-6, "the reference's rowsOf agrees");
    const wdx = gather(dropoutBackwardRef(big(dy), p, key));
    assertClose(await gpu.read(dx, n), wdx, 1e-6, "dropoutBackward rowsOf");
    assertClose(await gpu.read(dxAcc, n), wdx.map((v, i) => v + init[i]), 1e-6, "accumulate rowsOf");
    if (every > 1) ok(want.some((v, i) => (v !== 0) !== (dropoutRef(x, p, key)[i] !== 0)), "masks differ");
    for (const b of [xb, dyb, y, dx, dxAcc]) b.destroy();
  }
  const xb = gpu.upload(new Float32Array(8)), y = gpu.upload(new Float32Array(8));
  throws(
    () =>
      dropout(new Recorder(gpu), {
        x: xb,
        y,
        n: 8,
        p: 0.1,
        key: [0, 0, 0, 0],
        rowsOf: { cols: 0, every: 2 },
      }),
    /dropout: rowsOf needs positive integers cols and every/,
  );
  xb.destroy();
  y.destroy();
});
