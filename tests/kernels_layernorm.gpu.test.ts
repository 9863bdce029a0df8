import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import { layerNorm, layerNormBackward } from "../kernels/layernorm.ts";
import { layerNormBackwardRef, layerNormRef } from "../kernels/reference/layernorm.ts";
import { assertClose, poison, randomF32, randomF64 } from "./util.ts";

Deno.test("layernorm reference: backward matches float64 finite differences", () => {
  const rows = 3, cols = 5, eps = 1e-5;
  const x = randomF64(rows * cols, 1, -2, 2);
  const gamma = randomF64(cols, 2, 0.5, 1.5), beta = randomF64(cols, 3);
  const w = randomF64(rows * cols, 4); // loss = Σ w ⊙ y, so dy = w
  const loss = (xx: Float64Array) =>
    layerNormRef(xx, gamma, beta, rows, cols, eps).y.reduce((s, v, i) => s + v * w[i], 0);
  const { mean, rstd } = layerNormRef(x, gamma, beta, rows, cols, eps);
  const init = randomF64(rows * cols, 5);
  const dx = layerNormBackwardRef(w, x, gamma, mean, rstd, rows, cols);
  const dxAcc = layerNormBackwardRef(w, x, gamma, mean, rstd, rows, cols, init);
  const h = 1e-6;
  for (let i = 0; i < x.length; i++) {
    const xp = x.slice(), xm = x.slice();
    xp[i] += h;
    xm[i] -= h;
    const fd = (loss(xp) - loss(xm)) / (2 * h);
    ok(Math.abs(fd - dx[i]) < 1e-7, `dx[${i}]: ${dx[i]} vs finite difference ${fd}`);
    ok(Math.abs(dxAcc[i] - init[i] - dx[i]) < 1e-12);
  }
});

Deno.test("layernorm: GPU forward and backward match the float64 reference on ragged shapes", async (t) => {
  // One invocation per row (CPU adapters' default; texture-staged where cols % 64 == 0) and a workgroup of 128
  // per row (GPUs' default), on both adapter kinds. 300 columns: more than one column per invocation and a
  // ragged last stride.
  for (const workgroupPerRow of [false, true]) {
    await t.step(
      workgroupPerRow ? "a workgroup per row" : "an invocation per row",
      () => raggedShapes(workgroupPerRow),
    );
  }
});

async function raggedShapes(workgroupPerRow: boolean): Promise<void> {
  const gpu = await getGpu();
  const eps = 1e-5;
  for (
    const [rows, cols, seed] of [[1, 1, 1], [1, 5, 2], [3, 7, 3], [17, 64, 4], [70, 129, 5], [70, 192, 6], [
      5,
      300,
      7,
    ]] as const
  ) {
    const n = rows * cols;
    // an offset of 3 checks that the variance is centred (not E[x²] − mean²)
    const x = randomF32(n, seed, 2, 4), dy = randomF32(n, seed + 10);
    const gamma = randomF32(cols, seed + 20, 0.5, 1.5), beta = randomF32(cols, seed + 30);
    const init = randomF32(n, seed + 40);
    const xb = gpu.upload(x), dyb = gpu.upload(dy), gb = gpu.upload(gamma), bb = gpu.upload(beta);
    const y = gpu.upload(poison(n)), mean = gpu.upload(poison(rows)), rstd = gpu.upload(poison(rows));
    const dx = gpu.upload(poison(n)), dxAcc = gpu.upload(init);
    const rec = new Recorder(gpu);
    const ran: string[] = [];
    rec.observer = {
      onDispatch: (d) => void ran.push(d.pipeline.label.replace(/-(acc|set)$/, "")),
      beforeFinish: () => {},
      afterSubmit: () => {},
    };
    layerNorm(rec, { x: xb, gamma: gb, beta: bb, y, mean, rstd, rows, cols, eps, workgroupPerRow });
    layerNormBackward(rec, { dy: dyb, x: xb, gamma: gb, mean, rstd, dx, rows, cols, workgroupPerRow });
    layerNormBackward(rec, {
      workgroupPerRow,
      dy: dyb,
      x: xb,
      gamma: gb,
      mean,
      rstd,
      dx: dxAcc,
      rows,
      cols,
      accumulate: true,
    });
    const gy = await rec.read(y, n);
    const [gm, gr, gdx, gdxAcc] = await Promise.all([
      gpu.read(mean, rows),
      gpu.read(rstd, rows),
      gpu.read(dx, n),
      gpu.read(dxAcc, n),
    ]);
    const want = layerNormRef(x, gamma, beta, rows, cols, eps);
    const what = `${rows}x${cols}${workgroupPerRow ? " (workgroup per row)" : ""}`;
    const kernels = workgroupPerRow
      ? ["layernorm-wg", "layernorm-backward-wg", "layernorm-backward-wg"]
      : cols % 64 === 0
      ? ["layernorm-tex", "layernorm-backward-tex", "layernorm-backward-tex"]
      : ["layernorm", "layernorm-backward", "layernorm-backward"];
    deepStrictEqual(ran, kernels, `kernels of ${what}`);
    assertClose(gy, want.y, 1e-5, `layerNorm y ${what}`);
    assertClose(gm, want.mean, 1e-6, `layerNorm mean ${what}`);
    assertClose(gr, want.rstd, 1e-5, `layerNorm rstd ${what}`);
    // backward reference fed the GPU's saved statistics (what the kernel itself uses)
    const wdx = layerNormBackwardRef(dy, x, gamma, gm, gr, rows, cols);
    // dx = rstd·(γ·dy − mean(γ·dy) − x̂·mean(γ·dy·x̂)) is a cancellation of terms of size rstd·|γ·dy|, exactly 0
    // at cols = 1. fp32 leaves it at rounding size (~1e-8 of those terms) when the compiler fuses γ·dy − mean
    // into an FMA (NVIDIA's Vulkan driver does: 6.4e-6 at 1x1 against 0), so errors are measured against that
    // size. Elsewhere max |dx| is of the same order, so this floor changes nothing.
    let terms = 0;
    for (let i = 0; i < n; i++) {
      terms = Math.max(terms, gr[Math.floor(i / cols)] * Math.abs(gamma[i % cols] * dy[i]));
    }
    assertClose(gdx, wdx, 1e-5, `layerNormBackward ${what}`, terms);
    assertClose(
      gdxAcc,
      layerNormBackwardRef(dy, x, gamma, gm, gr, rows, cols, init),
      1e-5,
      `accumulate ${what}`,
      terms,
    );
    for (const b of [xb, dyb, gb, bb, y, mean, rstd, dx, dxAcc]) b.destroy();
  }
}

Deno.test("layernorm: bad arguments are rejected with the kernel and buffer named", async () => {
  const gpu = await getGpu();
  const b = gpu.buffer(16 * 4), s = gpu.buffer(4 * 4), r = gpu.buffer(4 * 4);
  const rec = new Recorder(gpu);
  const args = {
    x: b,
    gamma: s,
    beta: s,
    y: gpu.buffer(16 * 4),
    mean: r,
    rstd: gpu.buffer(16),
    rows: 4,
    cols: 4,
  };
  throws(
    () => layerNorm(rec, { ...args, cols: 5, eps: 1e-5 }),
    /layerNorm: buffer x has 64 bytes but 20 elements/,
  );
  throws(() => layerNorm(rec, { ...args, eps: NaN }), /layerNorm: eps must be a finite number/);
  throws(() => layerNorm(rec, { ...args, y: b, eps: 1e-5 }), /layerNorm: x and y must be different/);
  throws(
    () => layerNormBackward(rec, { dy: b, x: b, gamma: s, mean: r, rstd: r, dx: b, rows: 4, cols: 4 }),
    /layerNormBackward: dy and dx must be different/,
  );
});
