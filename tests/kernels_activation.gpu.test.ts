import { ok, strictEqual, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import { ERF_WGSL, gelu, geluBackward, tanhBackward, tanhForward } from "../kernels/activation.ts";
import {
  erfBothMethodsRef,
  erfcRef,
  erfRef,
  geluBackwardRef,
  geluRef,
  tanhBackwardRef,
  tanhRef,
} from "../kernels/reference/activation.ts";
import { assertClose, poison, randomF32, relErr } from "./util.ts";

Deno.test("activation reference: float64 erf matches known values and both methods agree", () => {
  const known: [number, number][] = [
    [0, 0],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [-3, -0.9999779095030014],
    [3.5, 0.9999992569016276],
  ];
  for (const [x, want] of known) {
    ok(Math.abs(erfRef(x) - want) <= 2e-16 * Math.max(1, Math.abs(want)) * 4, `erf(${x}) = ${erfRef(x)}`);
  }
  for (const z of [2, 2.5, 3]) {
    const [s, c] = erfBothMethodsRef(z);
    ok(Math.abs(s - c) < 1e-15, `erf(${z}) by series ${s} vs continued fraction ${c}`);
  }
  ok(Number.isNaN(erfRef(NaN)));
  // erfc in the tail without cancellation: erfc(5) = 1.5374597944280349e-12
  ok(Math.abs(erfcRef(5) / 1.5374597944280349e-12 - 1) < 1e-13, `erfc(5) = ${erfcRef(5)}`);
  ok(Math.abs(erfcRef(-1) - (1 + 0.8427007929497149)) < 1e-15);
});

Deno.test("activation reference: GELU and tanh backward match float64 finite differences", () => {
  const x = Float64Array.from([-4.2, -2, -1.3, -0.4, 0, 0.2, 0.9, 1.7, 3.1, 5]);
  const dy = Float64Array.from(x, (_, i) => 0.3 + 0.1 * i);
  const h = 1e-6;
  const fd = (f: (v: Float64Array) => Float64Array, i: number) => {
    const xp = x.slice(), xm = x.slice();
    xp[i] += h;
    xm[i] -= h;
    return (f(xp)[i] - f(xm)[i]) / (2 * h) * dy[i];
  };
  const gBack = geluBackwardRef(x, dy);
  const tBack = tanhBackwardRef(tanhRef(x), dy);
  for (let i = 0; i < x.length; i++) {
    ok(Math.abs(gBack[i] - fd(geluRef, i)) < 1e-8, `gelu' at ${x[i]}: ${gBack[i]} vs ${fd(geluRef, i)}`);
    ok(Math.abs(tBack[i] - fd(tanhRef, i)) < 1e-8, `tanh' at ${x[i]}: ${tBack[i]} vs ${fd(tanhRef, i)}`);
  }
});

Deno.test("activation: WGSL erf_f32 has absolute error below 2e-7 on a dense grid", async () => {
  const gpu = await getGpu();
  const n = 4001;
  const xs = Float32Array.from({ length: n }, (_, i) => -6 + 12 * i / (n - 1));
  const code = ERF_WGSL + `
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x >= p.n) { return; }
  y[g.x] = erf_f32(x[g.x]);
}`;
  const xb = gpu.upload(xs), yb = gpu.upload(poison(n));
  const rec = new Recorder(gpu);
  rec.dispatch({
    pipeline: gpu.pipeline("test-erf", code),
    buffers: [xb, yb],
    u32: [n],
    groups: [Math.ceil(n / 64)],
    label: "erf",
  });
  const got = await rec.read(yb, n);
  let worst = 0, at = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.abs(got[i] - erfRef(xs[i]));
    ok(Number.isFinite(got[i]), `erf(${xs[i]}) is ${got[i]}`);
    if (e > worst) [worst, at] = [e, xs[i]];
  }
  console.log(`WGSL erf_f32 max absolute error on [-6, 6]: ${worst.toExponential(2)} at ${at}`);
  ok(worst < 2e-7, `erf max abs error ${worst}`);
  xb.destroy();
  yb.destroy();
});

Deno.test("activation: GELU and tanh forward/backward on the GPU match the float64 reference", async () => {
  const gpu = await getGpu();
  for (const [n, seed] of [[1, 1], [63, 2], [1000, 3], [4099, 4], [4100, 6], [5272, 5]] as const) {
    const x = randomF32(n, seed, -7, 7);
    const dy = randomF32(n, seed + 100);
    const rec = new Recorder(gpu);
    const xb = gpu.upload(x), dyb = gpu.upload(dy);
    const y = gpu.upload(poison(n)), dx = gpu.upload(poison(n));
    const t = gpu.upload(poison(n)), dt = gpu.upload(poison(n));
    gelu(rec, { x: xb, y, n });
    geluBackward(rec, { x: xb, dy: dyb, dx, n });
    tanhForward(rec, { x: xb, y: t, n });
    rec.submit();
    const tGot = await gpu.read(t, n);
    tanhBackward(rec, { y: t, dy: dyb, dx: dt, n });
    const gy = await rec.read(y, n);
    const gdx = await gpu.read(dx, n);
    const tdx = await gpu.read(dt, n);
    // fp32: one rounding per operation, a handful of operations → 1e-5 relative to the largest value.
    assertClose(gy, geluRef(x), 1e-5, `gelu n=${n}`);
    assertClose(gdx, geluBackwardRef(x, dy), 1e-5, `geluBackward n=${n}`);
    assertClose(tGot, tanhRef(x), 1e-5, `tanh n=${n}`);
    assertClose(tdx, tanhBackwardRef(tGot, dy), 1e-5, `tanhBackward n=${n}`);
    // the negative tail of GELU is tiny; Φ there comes from erfc directly, so each element keeps its own
    // relative accuracy (bound 2e-6; measured 4.1e-7 on llvmpipe)
    const wy = geluRef(x);
    let worstTail = 0;
    for (let i = 0; i < n; i++) {
      if (x[i] < -2 && x[i] > -12) {
        const e = Math.abs(gy[i] - wy[i]) / Math.abs(wy[i]);
        ok(e <= 2e-6, `gelu(${x[i]}) = ${gy[i]}, want ${wy[i]}`);
        worstTail = Math.max(worstTail, e);
      }
    }
    if (n > 1000) {
      console.log(`GELU negative tail (−7 < x < −2): max relative error ${worstTail.toExponential(2)}`);
    }
    for (const b of [xb, dyb, y, dx, t, dt]) b.destroy();
  }
});

Deno.test("activation: large inputs saturate without NaN; bad sizes are rejected", async () => {
  const gpu = await getGpu();
  const x = Float32Array.from([-100, -20, 20, 100, 3e38, -3e38]);
  const n = x.length;
  const xb = gpu.upload(x), y = gpu.upload(poison(n)), t = gpu.upload(poison(n));
  const rec = new Recorder(gpu);
  gelu(rec, { x: xb, y, n });
  tanhForward(rec, { x: xb, y: t, n });
  const gy = await rec.read(y, n);
  const ty = await gpu.read(t, n);
  strictEqual(relErr(ty, [-1, -1, 1, 1, 1, -1]), 0);
  assertClose(gy, [-0, -0, 20, 100, 3e38, -0], 1e-6, "gelu saturation");
  throws(() => gelu(rec, { x: xb, y, n: n + 1 }), /gelu: buffer x has 24 bytes/);
  throws(() => gelu(rec, { x: xb, y: xb, n }), /gelu: x and y must be different/);
  for (const b of [xb, y, t]) b.destroy();
});
