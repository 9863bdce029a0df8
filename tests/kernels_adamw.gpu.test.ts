import { ok, strictEqual, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import { adamw } from "../kernels/adamw.ts";
import { adamwRef } from "../kernels/reference/adamw.ts";
import { assertClose, randomF32 } from "./util.ts";

const HYPER = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 };

Deno.test("adamw reference: first step moves each entry by lr·g/(|g| + eps) after decay", () => {
  const p = Float64Array.from([1, -2, 0.5]), g = [0.3, -0.01, 2];
  const m = new Float64Array(3), v = new Float64Array(3);
  adamwRef(p, g, m, v, { ...HYPER, step: 1 });
  const want = [1, -2, 0.5].map((x, i) => x * (1 - 1e-2 * 0.05) - 1e-2 * g[i] / (Math.abs(g[i]) + 1e-8));
  for (let i = 0; i < 3; i++) ok(Math.abs(p[i] - want[i]) < 1e-14, `param ${i}: ${p[i]} vs ${want[i]}`);
});

Deno.test("adamw: several GPU steps match the float64 reference; masked entries stay bit-identical", async () => {
  const gpu = await getGpu();
  for (const [n, seed, useMask] of [[1, 1, false], [67, 2, true], [1000, 3, true]] as const) {
    const param0 = randomF32(n, seed),
      m0 = randomF32(n, seed + 1, -0.1, 0.1),
      v0 = randomF32(n, seed + 2, 0, 0.01);
    const mask = Float32Array.from({ length: n }, (_, i) => (i * 7 + seed) % 3 === 0 ? 0 : 1);
    const pb = gpu.upload(param0), mb = gpu.upload(m0), vb = gpu.upload(v0), maskb = gpu.upload(mask);
    const gb = gpu.buffer(n * 4);
    const p = Float64Array.from(param0), m = Float64Array.from(m0), v = Float64Array.from(v0);
    const rec = new Recorder(gpu);
    for (let step = 1; step <= 4; step++) {
      const grad = randomF32(n, seed * 100 + step);
      gpu.write(gb, grad);
      adamw(rec, { param: pb, grad: gb, m: mb, v: vb, mask: useMask ? maskb : undefined, n, ...HYPER, step });
      rec.submit();
      adamwRef(p, grad, m, v, { ...HYPER, step }, useMask ? mask : undefined);
    }
    const gp = await gpu.read(pb, n), gm = await gpu.read(mb, n), gv = await gpu.read(vb, n);
    // fp32 state over 4 steps; each step is a handful of roundings per element
    assertClose(gp, p, 1e-5, `param n=${n}`);
    assertClose(gm, m, 1e-5, `m n=${n}`);
    assertClose(gv, v, 1e-5, `v n=${n}`);
    if (useMask) {
      let frozen = 0;
      for (let i = 0; i < n; i++) {
        if (mask[i] !== 0) continue;
        frozen++;
        strictEqual(Object.is(gp[i], param0[i]), true, `frozen param ${i}`);
        strictEqual(Object.is(gm[i], m0[i]), true, `frozen m ${i}`);
        strictEqual(Object.is(gv[i], v0[i]), true, `frozen v ${i}`);
      }
      ok(frozen > 0);
    }
    for (const b of [pb, mb, vb, maskb, gb]) b.destroy();
  }
});

Deno.test("adamw: bad hyper-parameters and sizes are rejected", async () => {
  const gpu = await getGpu();
  const [p, g, m, v] = [0, 1, 2, 3].map(() => gpu.buffer(16));
  const rec = new Recorder(gpu);
  const base = { param: p, grad: g, m, v, n: 4, ...HYPER, step: 1 };
  throws(() => adamw(rec, { ...base, step: 0 }), /adamw: step must be an integer >= 1/);
  throws(() => adamw(rec, { ...base, beta2: 1 }), /adamw: beta2 must be in \[0, 1\)/);
  throws(() => adamw(rec, { ...base, n: 5 }), /adamw: buffer param has 16 bytes but 5 elements/);
  throws(() => adamw(rec, { ...base, m: v }), /adamw: m and v must be different/);
});
