import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import type { Dispatch, DispatchObserver } from "../kernels/recorder.ts";
import { gemm } from "../kernels/gemm.ts";
import { add, addInPlace, scale } from "../kernels/elementwise.ts";
import { layerNorm } from "../kernels/layernorm.ts";
import { adamw } from "../kernels/adamw.ts";
import { chromeTrace, hasTimestamps, KernelProfiler, summarize, summaryCsv } from "../kernels/profiler.ts";
import { randomF32 } from "./util.ts";

/** Captures what each launcher hands to dispatch. */
class Capture implements DispatchObserver {
  seen: Dispatch[] = [];
  onDispatch(d: Dispatch): undefined {
    this.seen.push(d);
    return undefined;
  }
  beforeFinish(): void {}
  afterSubmit(): void {}
}

Deno.test("profiler: launchers report hand-computed FLOP and byte counts for small shapes", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const cap = new Capture();
  rec.observer = cap;
  const [m, n, k] = [5, 7, 3];
  const a = gpu.upload(randomF32(m * k, 1)), b = gpu.upload(randomF32(k * n, 2));
  const c = gpu.upload(randomF32(m * n, 3)), bias = gpu.upload(randomF32(n, 4));
  gemm(rec, { a, b, c, m, n, k, path: "buffer" });
  gemm(rec, { a, b, c, bias, m, n, k, accumulate: true, path: "buffer" });
  const x = gpu.upload(randomF32(10, 5)), y = gpu.upload(randomF32(10, 6)), z = gpu.upload(randomF32(10, 7));
  add(rec, { a: x, b: y, out: z, n: 10 });
  addInPlace(rec, { x, y: z, n: 10, alpha: 2 });
  scale(rec, { x: z, n: 10, alpha: 3 });
  const [rows, cols] = [2, 5];
  const g = gpu.upload(randomF32(cols, 8)), be = gpu.upload(randomF32(cols, 9));
  const mean = gpu.upload(new Float32Array(rows)), rstd = gpu.upload(new Float32Array(rows));
  layerNorm(rec, { x, gamma: g, beta: be, y: z, mean, rstd, rows, cols, eps: 1e-5 });
  const mm = gpu.upload(new Float32Array(10)), vv = gpu.upload(new Float32Array(10));
  adamw(rec, {
    param: x,
    grad: y,
    m: mm,
    v: vv,
    n: 10,
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    step: 1,
  });
  rec.submit();
  const got = cap.seen.map((d) => [d.label, d.flops, d.bytes]);
  deepStrictEqual(got, [
    ["gemm", 2 * 5 * 7 * 3, 4 * (5 * 3 + 3 * 7 + 5 * 7)],
    ["gemm", 2 * 5 * 7 * 3 + 35 + 35, 4 * (5 * 3 + 3 * 7 + 2 * 5 * 7) + 4 * 7],
    ["add", 10, 120],
    ["addInPlace", 20, 120],
    ["scale", 10, 80],
    ["layerNorm", 80, 4 * (20 + 10 + 4)],
    ["adamw", 120, 280],
  ]);
  for (const d of cap.seen) ok(d.shape && d.shape.length > 0, `${d.label} has a shape`);
  strictEqual(cap.seen[0].shape, "5x7x3");
});

Deno.test("profiler: timestamps give one trace event per dispatch; off adds no query sets", async () => {
  const gpu = await getGpu();
  if (!hasTimestamps(gpu)) {
    throws(() => new KernelProfiler(gpu), /timestamp-query/);
    return;
  }
  const dev = gpu.device;
  const orig = dev.createQuerySet.bind(dev);
  let created = 0;
  dev.createQuerySet = (d: GPUQuerySetDescriptor) => (created++, orig(d));
  try {
    const rec = new Recorder(gpu);
    const x = gpu.upload(randomF32(4096, 1)), y = gpu.upload(randomF32(4096, 2));
    const z = gpu.upload(randomF32(4096, 3));
    // Off: no observer, no query sets.
    for (let i = 0; i < 3; i++) add(rec, { a: x, b: y, out: z, n: 4096 });
    await rec.read(z, 1);
    strictEqual(created, 0);
    const prof = new KernelProfiler(gpu);
    rec.observer = prof;
    const [m, n, k] = [33, 65, 17];
    const a = gpu.upload(randomF32(m * k, 4)), b = gpu.upload(randomF32(k * n, 5));
    const c = gpu.upload(randomF32(m * n, 6));
    for (let i = 0; i < 3; i++) add(rec, { a: x, b: y, out: z, n: 4096 });
    gemm(rec, { a, b, c, m, n, k, path: "buffer" });
    rec.submit();
    scale(rec, { x: z, n: 4096, alpha: 2 });
    await rec.read(z, 1);
    rec.observer = null;
    const events = await prof.collect();
    strictEqual(events.length, 5);
    strictEqual(created, 1);
    deepStrictEqual(events.map((e) => e.label), ["add", "add", "add", "gemm", "scale"]);
    for (const e of events) ok(Number.isFinite(e.durationNs) && e.durationNs >= 0, `${e.label} duration`);
    ok(events.some((e) => e.durationNs > 0), "some dispatch took measurable time");
    const trace = JSON.parse(JSON.stringify(chromeTrace(events)));
    ok(Array.isArray(trace.traceEvents));
    strictEqual(trace.traceEvents.length, 5);
    for (const ev of trace.traceEvents) {
      strictEqual(ev.ph, "X");
      ok(typeof ev.name === "string" && typeof ev.ts === "number" && typeof ev.dur === "number");
      ok(ev.ts >= 0 && ev.dur >= 0);
    }
    const rows = summarize(events, { gflops: 10, gbps: 10 });
    const addRow = rows.find((r) => r.label === "add")!;
    strictEqual(addRow.calls, 3);
    strictEqual(addRow.flops, 3 * 4096);
    ok(Math.abs(rows.reduce((s, r) => s + r.share, 0) - 1) < 1e-9);
    const csv = summaryCsv(rows).trim().split("\n");
    strictEqual(csv.length, 1 + rows.length);
    // Profiling off again: nothing new created.
    add(rec, { a: x, b: y, out: z, n: 4096 });
    await rec.read(z, 1);
    strictEqual(created, 1);
  } finally {
    dev.createQuerySet = orig;
  }
});

Deno.test("profiler: more dispatches than one query set holds are all timed, in order", async () => {
  const gpu = await getGpu();
  if (!hasTimestamps(gpu)) return;
  const rec = new Recorder(gpu);
  const x = gpu.upload(new Float32Array(4));
  const prof = new KernelProfiler(gpu);
  rec.observer = prof;
  const n = 2050; // 4100 queries: a full set of 4096 and a partial one
  for (let i = 0; i < n; i++) scale(rec, { x, n: 1 + (i % 4), alpha: 1 });
  await rec.read(x, 1);
  rec.observer = null;
  const events = await prof.collect();
  strictEqual(prof.querySetsCreated, 2);
  strictEqual(events.length, n);
  deepStrictEqual(events.slice(0, 5).map((e) => e.shape), ["1", "2", "3", "4", "1"]);
  strictEqual(events[n - 1].shape, String(1 + ((n - 1) % 4)));
  for (const e of events) ok(Number.isFinite(e.durationNs) && e.durationNs >= 0);
  // Starts are non-decreasing: the dispatches ran in recording order.
  for (let i = 1; i < n; i++) ok(events[i].startNs >= events[i - 1].startNs, `event ${i} starts in order`);
});
