import { deepStrictEqual, ok, strictEqual as assertEquals } from "node:assert/strict";
import { SerialProfiler } from "../kernels/profiler_serial.ts";
import { getGpu, Gpu } from "../kernels/device.ts";
import { gemm } from "../kernels/gemm.ts";
import { loraBackward, loraForward } from "../kernels/lora.ts";
import { randomF32 } from "./util.ts";
import { Recorder } from "../kernels/recorder.ts";
import { scale } from "../kernels/elementwise.ts";
import { hashKey, KeyedRandom, RNG_WGSL, uniformKey } from "../kernels/rng.ts";

Deno.test("rng: WGSL hash equals the TypeScript hash bit for bit", async () => {
  const gpu = await getGpu();
  const n = 1000;
  const code = RNG_WGSL + `
struct P { k0: u32, k1: u32, k2: u32, k3: u32, n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read_write> outf: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x >= p.n) { return; }
  out[g.x] = hash_key5(p.k0, p.k1, p.k2, p.k3, g.x);
  outf[g.x] = uniform_key5(p.k0, p.k1, p.k2, p.k3, g.x);
}`;
  const out = gpu.buffer(n * 4, "hash out");
  const outf = gpu.buffer(n * 4, "uniform out");
  const rec = new Recorder(gpu);
  const key = [12345, 4, 0xffffffff, 7];
  rec.dispatch({
    pipeline: gpu.pipeline("test-rng", code),
    buffers: [out, outf],
    u32: [...key, n],
    groups: [Math.ceil(n / 64)],
    label: "rng",
  });
  const gotF = await rec.read(outf, n);
  const gotU = new Uint32Array((await gpu.read(out, n)).buffer);
  for (let i = 0; i < n; i++) {
    assertEquals(gotU[i], hashKey(...key, i), `hash at ${i}`);
    assertEquals(gotF[i], Math.fround(uniformKey(...key, i)), `uniform at ${i}`);
  }
  out.destroy();
  outf.destroy();
});

Deno.test("rng: keyed streams are reproducible, distinct and roughly uniform", () => {
  const a = new KeyedRandom([1, 2, 3]);
  const b = new KeyedRandom([1, 2, 3]);
  const c = new KeyedRandom([1, 2, 4]);
  let same = 0, mean = 0;
  for (let i = 0; i < 10000; i++) {
    const x = a.uniform();
    assertEquals(x, b.uniform());
    if (x === c.uniform()) same++;
    mean += x / 10000;
  }
  assertEquals(same, 0);
  if (Math.abs(mean - 0.5) > 0.02) throw new Error(`mean ${mean}`);
});

Deno.test("recorder: a command buffer with only copies and clears submits (no uniform arena needed)", async () => {
  const gpu = await getGpu();
  const a = gpu.upload(new Float32Array([1, 2, 3, 4]), "a");
  const b = gpu.upload(new Float32Array([9, 9, 9, 9]), "b");
  const rec = new Recorder(gpu);
  rec.clear(b, 8, 8);
  rec.copy(a, 0, b, 0, 4);
  const got = await rec.read(b, 4);
  assertEquals([...got].join(","), "1,9,0,0");
  a.destroy();
  b.destroy();
});

Deno.test("recorder: bind groups are reused across submits with that submit's uniforms, and never for other buffers", async () => {
  const gpu = await getGpu();
  const x = gpu.upload(new Float32Array([1, 2, 3]), "x");
  const y = gpu.upload(new Float32Array([10, 20, 30]), "y");
  const rec = new Recorder(gpu);
  // Submit 1: x *= 2, then y *= 3 (slots 0 and 1). Submit 2: the same dispatches with other factors reuse both
  // bind groups; the factors must be the new ones. Submit 3 swaps the buffers between the slots (new groups),
  // and a copy between dispatches ends one compute pass and starts another.
  scale(rec, { x, n: 3, alpha: 2 });
  scale(rec, { x: y, n: 3, alpha: 3 });
  rec.submit();
  assertEquals(rec.bindGroupsCreated, 2);
  scale(rec, { x, n: 3, alpha: 5 });
  scale(rec, { x: y, n: 3, alpha: 7 });
  rec.submit();
  assertEquals(rec.bindGroupsCreated, 2);
  scale(rec, { x: y, n: 3, alpha: 0.5 });
  rec.copy(y, 0, x, 8, 4);
  scale(rec, { x, n: 3, alpha: -1 });
  const gx = await rec.read(x, 3), gy = await gpu.read(y, 3);
  assertEquals(rec.bindGroupsCreated, 4);
  // x: 1,2,3 ·2·5 = 10,20,30; y: ·3·7·0.5 = 105,210,315; x[2] = y[0]; then x ·(−1).
  assertEquals([...gx].join(","), "-10,-20,-105");
  assertEquals([...gy].join(","), "105,210,315");
  x.destroy();
  y.destroy();
  // Generated kernels pass their WGSL as a function, built on the key's first use only.
  let built = 0;
  const src = () => (built++, "@compute @workgroup_size(1) fn main() {}");
  const p1 = gpu.pipeline("test-lazy-wgsl", src), p2 = gpu.pipeline("test-lazy-wgsl", src);
  assertEquals(p1, p2);
  assertEquals(built, 1);
});

Deno.test("device: flushWrites submits queued writes above a threshold and keeps their data", async () => {
  const gpu = await getGpu();
  await gpu.flushWrites();
  assertEquals(gpu.pendingWriteBytes, 0, "nothing pending after a flush");
  const a = gpu.upload(Float32Array.from({ length: 1000 }, (_, i) => i * 0.5), "flush-a");
  const b = gpu.upload(Int32Array.from({ length: 24 }, (_, i) => 7 - 3 * i), "flush-b");
  assertEquals(gpu.pendingWriteBytes, 4096, "4000 + 96 bytes queued");
  await gpu.flushWrites(4096);
  assertEquals(gpu.pendingWriteBytes, 4096, "at the threshold nothing is flushed");
  await gpu.flushWrites(4095);
  assertEquals(gpu.pendingWriteBytes, 0, "above the threshold the writes are flushed");
  const back = await gpu.read(a, 1000);
  for (let i = 0; i < 1000; i++) assertEquals(back[i], i * 0.5, `a[${i}] after the flush`);
  const bBack = new Int32Array((await gpu.read(b, 24)).buffer);
  for (let i = 0; i < 24; i++) assertEquals(bBack[i], 7 - 3 * i, `b[${i}] after the flush`);
  a.destroy();
  b.destroy();
});

Deno.test("device: kernel parameters in a storage buffer (lavapipe's setting) give the same results as uniforms", async () => {
  const gpu = await getGpu();
  // Both settings explicitly (the shared Gpu already reads storage on lavapipe), with the shared one's kernel class.
  const sgpu = new Gpu(gpu.device, gpu.info, { paramsInStorage: true, isCpu: gpu.isCpu });
  const ugpu = new Gpu(gpu.device, gpu.info, { paramsInStorage: false, isCpu: gpu.isCpu });
  assertEquals(sgpu.paramsInStorage, true);
  assertEquals(sgpu.describe().includes("kernel parameters in a storage buffer"), true);
  // Only the storage address space allows an array of u32 with a 4-byte stride in the parameter struct (uniform
  // arrays need a 16-byte stride): this kernel compiles and reads its parameters only if the declaration was
  // rewritten and the recorder bound its slot as storage.
  const out = sgpu.buffer(4 * 4, "params out");
  const srec = new Recorder(sgpu);
  srec.dispatch({
    pipeline: sgpu.pipeline(
      "test-params-storage",
      `struct P { n: u32, scale: u32, vals: array<u32, 4> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(4) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < p.n) { out[g.x] = p.scale * p.vals[g.x]; }
}`,
    ),
    buffers: [out],
    u32: [4, 10, 1, 2, 3, 4],
    groups: [1],
    label: "params-storage",
  });
  await srec.read(out, 4);
  assertEquals([...new Uint32Array((await sgpu.read(out, 4)).buffer)].join(","), "10,20,30,40");
  // Real kernels with u32 and f32 parameters: GEMMs (texture and buffer paths, alpha, bias, accumulate) and the
  // masked LoRA branch with dropout, bit for bit against the same kernels reading uniforms.
  const run = async (g: Gpu): Promise<Float32Array[]> => {
    const rec = new Recorder(g);
    const m = 37, n = 70, k = 45, r = 4;
    const x = g.upload(randomF32(m * k, 1), "x"), w = g.upload(randomF32(n * k, 2), "w");
    const bias = g.upload(randomF32(n, 3), "bias"), y1 = g.upload(randomF32(m * n, 4), "y1");
    const y2 = g.buffer(m * n * 4, "y2");
    gemm(rec, {
      a: x,
      b: w,
      c: y1,
      bias,
      m,
      n,
      k,
      transB: true,
      alpha: 0.75,
      accumulate: true,
      path: "texture",
    });
    gemm(rec, { a: x, b: w, c: y2, m, n, k, transB: true, alpha: -1.5, path: "buffer" });
    const la = g.upload(randomF32(r * k, 5), "A"), lb = g.upload(randomF32(n * r, 6), "B");
    const ones = (len: number) => g.upload(new Float32Array(len).fill(1), "mask");
    const t = g.buffer(m * r * 4, "t"), dA = g.buffer(r * k * 4, "dA"), dB = g.buffer(n * r * 4, "dB");
    const dx = g.upload(randomF32(m * k, 7), "dx");
    const lora = {
      m,
      nIn: k,
      nOut: n,
      r,
      scale: 2,
      dropout: 0.25,
      dropKey: [3, 4, 5, 6] as [number, number, number, number],
    };
    const masks = { maskA: ones(k), maskB: ones(n) };
    loraForward(rec, { ...lora, ...masks, x, a: la, b: lb, t, y: y2 });
    loraBackward(rec, { ...lora, ...masks, dy: y1, x, a: la, b: lb, t, dA, dB, dx });
    rec.submit();
    const got = await Promise.all(
      [[y1, m * n], [y2, m * n], [t, m * r], [dA, r * k], [dB, n * r], [dx, m * k]].map(
        ([b, len]) => g.read(b as GPUBuffer, len as number),
      ),
    );
    for (const b of [x, w, bias, y1, y2, la, lb, t, dA, dB, dx, masks.maskA, masks.maskB]) b.destroy();
    return got;
  };
  const [want, got] = [await run(ugpu), await run(sgpu)];
  for (let i = 0; i < want.length; i++) deepStrictEqual(got[i], want[i], `output ${i}`);
  // The serial profiler replays each dispatch with its own parameter buffer, which must bind as storage too.
  const prof = new SerialProfiler(sgpu, { repeats: 1 });
  srec.observer = prof;
  const s = 192, sq = sgpu.upload(randomF32(s * s, 8), "sq"), sc = sgpu.buffer(s * s * 4, "sc");
  gemm(srec, { a: sq, b: sq, c: sc, m: s, n: s, k: s }); // long enough to read as nonzero wall time
  await srec.read(out, 1);
  srec.observer = null;
  const events = await prof.collect();
  ok(events.some((e) => e.label.startsWith("gemm") && e.durationNs > 0), "the replayed GEMM ran");
  prof.destroy();
  for (const b of [out, sq, sc]) b.destroy();
});

Deno.test("device: the other adapter class's kernel variants on request (FEDLODROP_KERNELS)", async () => {
  const gpu = await getGpu();
  const asCpu = new Gpu(gpu.device, gpu.info, { isCpu: true });
  const asGpu = new Gpu(gpu.device, gpu.info, { isCpu: false });
  const detected = new Gpu(gpu.device, gpu.info);
  deepStrictEqual([asCpu.isCpu, asGpu.isCpu], [true, false]);
  // Exactly the one that differs from the detected class says so; the detected one says nothing.
  const says = (g: Gpu) =>
    g.describe().includes(`${g.isCpu ? "CPU" : "GPU"} kernel variants (FEDLODROP_KERNELS)`);
  assertEquals(says(detected), false);
  assertEquals(says(detected.isCpu ? asGpu : asCpu), true);
  assertEquals(says(detected.isCpu ? asCpu : asGpu), false);
  // Where the parameters live follows the adapter itself, not the variants chosen.
  assertEquals(asCpu.paramsInStorage, asGpu.paramsInStorage);
});
