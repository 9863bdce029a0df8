import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { getGpu, type Gpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import type { Dispatch, DispatchObserver } from "../kernels/recorder.ts";
import { gemm } from "../kernels/gemm.ts";
import { add, addInPlace, scale } from "../kernels/elementwise.ts";
import { layerNorm } from "../kernels/layernorm.ts";
import { adamw } from "../kernels/adamw.ts";
import {
  chromeTrace,
  createProfiler,
  type DispatchProfiler,
  hasTimestamps,
  KernelProfiler,
  resolveTimingMode,
  summarize,
  summaryCsv,
  summaryTable,
  type TimedDispatch,
  TIMING_LABELS,
} from "../kernels/profiler.ts";
import { SerialProfiler } from "../kernels/profiler_serial.ts";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import type { EncoderConfigLike } from "../model/reference.ts";
import { RobertaModel } from "../model/roberta.ts";
import type { EncodedExample } from "../model/batch.ts";
import { trainLocal } from "../fl/local_training.ts";
import { profileFirstSteps } from "../tasks/profile.ts";
import { writeTinyModel } from "./model_fixture.ts";
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
    const timed = await prof.collect();
    // On CPU adapters the element-wise kernels stage their operands (4096 is a multiple of 4): those copies
    // come back too, as transfers between the kernels.
    const events = timed.filter((e) => e.kind === "kernel");
    ok(timed.every((e) => e.kind === "kernel" || e.label === "copy-to-texture"));
    strictEqual(events.length, 5);
    strictEqual(created, 1);
    deepStrictEqual(events.map((e) => e.label), ["add", "add", "add", "gemm", "scale"]);
    for (const e of events) ok(Number.isFinite(e.durationNs) && e.durationNs >= 0, `${e.label} duration`);
    ok(events.some((e) => e.durationNs > 0), "some dispatch took measurable time");
    for (const e of events) strictEqual(e.timing, "timestamps");
    const trace = JSON.parse(JSON.stringify(chromeTrace(events)));
    ok(Array.isArray(trace.traceEvents));
    strictEqual(trace.otherData.timing, TIMING_LABELS.timestamps);
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
    ok(csv[0].endsWith(",timing"));
    for (const line of csv.slice(1)) ok(line.endsWith(`,${TIMING_LABELS.timestamps}`), line);
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

/** Checks the Chrome trace-event JSON of `events` (after a JSON round trip): one "X" event per dispatch. */
function checkTrace(events: TimedDispatch[], timing: string): void {
  const trace = JSON.parse(JSON.stringify(chromeTrace(events, { note: 1 })));
  deepStrictEqual(Object.keys(trace).sort(), ["otherData", "traceEvents"]);
  strictEqual(trace.otherData.timing, timing);
  strictEqual(trace.otherData.note, 1);
  strictEqual(trace.traceEvents.length, events.length);
  trace.traceEvents.forEach((ev: Record<string, unknown>, i: number) => {
    strictEqual(ev.ph, "X");
    strictEqual(ev.name, events[i].label);
    ok(typeof ev.ts === "number" && typeof ev.dur === "number" && ev.ts >= 0 && ev.dur >= 0);
    strictEqual(ev.pid, 1);
    strictEqual(ev.tid, 1);
    strictEqual((ev.args as Record<string, unknown>).timing, timing);
  });
}

/** Records a small sequence of in-place and out-of-place kernels, over two submits. */
function recordSequence(rec: Recorder, bufs: Record<string, GPUBuffer>): void {
  const [m, n, k] = [33, 65, 17];
  add(rec, { a: bufs.x, b: bufs.y, out: bufs.z, n: 1000 });
  scale(rec, { x: bufs.x, n: 1000, alpha: 2 });
  addInPlace(rec, { x: bufs.y, y: bufs.x, n: 1000, alpha: 1 });
  gemm(rec, { a: bufs.a, b: bufs.b, c: bufs.c, m, n, k, path: "buffer" });
  rec.submit();
  gemm(rec, { a: bufs.a, b: bufs.b, c: bufs.c, m, n, k, accumulate: true });
}

Deno.test("profiler: serial mode times each dispatch once, like timestamps; buffers as the step left them", async () => {
  const gpu = await getGpu();
  const dev = gpu.device;
  const orig = dev.createQuerySet.bind(dev);
  let created = 0;
  dev.createQuerySet = (d: GPUQuerySetDescriptor) => (created++, orig(d));
  const [m, n, k] = [33, 65, 17];
  const host = {
    x: randomF32(1000, 11),
    y: randomF32(1000, 12),
    z: randomF32(1000, 13),
    a: randomF32(m * k, 14),
    b: randomF32(k * n, 15),
    c: randomF32(m * n, 16),
  };
  const run = async (prof: DispatchProfiler | null) => {
    const bufs = Object.fromEntries(Object.entries(host).map(([key, v]) => [key, gpu.upload(v, key)]));
    const rec = new Recorder(gpu);
    rec.observer = prof;
    recordSequence(rec, bufs);
    await rec.read(bufs.c, 1);
    rec.observer = null;
    const events = prof ? await prof.collect() : [];
    const out: Record<string, Float32Array> = {};
    for (const [key, b] of Object.entries(bufs)) {
      out[key] = await gpu.read(b, host[key as keyof typeof host].length);
    }
    return { events, out, dispatches: rec.dispatchCount };
  };
  try {
    const plain = await run(null);
    const serialProf = new SerialProfiler(gpu);
    const serial = await run(serialProf);
    strictEqual(created, 0, "serial mode creates no query sets");
    strictEqual(serialProf.pending, 0);
    ok(serialProf.overheadNs > 0, "the empty-submit round trip was measured");
    // The replay ran on scratch copies: every buffer (including in-place outputs) holds what the step wrote.
    for (const key of Object.keys(host)) deepStrictEqual(serial.out[key], plain.out[key], `buffer ${key}`);
    strictEqual(serial.events.filter((e) => e.kind === "kernel").length, serial.dispatches);
    for (const e of serial.events) {
      strictEqual(e.timing, "serial");
      ok(Number.isFinite(e.durationNs) && e.durationNs >= 0, `${e.label} duration`);
    }
    for (let i = 1; i < serial.events.length; i++) {
      ok(serial.events[i].startNs > serial.events[i - 1].startNs, "replayed one after another, in order");
    }
    checkTrace(serial.events, TIMING_LABELS.serial);
    const rows = summarize(serial.events);
    ok(rows.every((r) => r.timing === "serial"));
    ok(summaryTable(rows).startsWith(`timing: ${TIMING_LABELS.serial}\n`));
    for (const line of summaryCsv(rows).trim().split("\n").slice(1)) {
      ok(line.endsWith(`,${TIMING_LABELS.serial}`));
    }
    if (hasTimestamps(gpu)) {
      const ts = await run(new KernelProfiler(gpu));
      deepStrictEqual(
        serial.events.map((e) => [e.label, e.shape, e.groups, e.flops, e.bytes]),
        ts.events.map((e) => [e.label, e.shape, e.groups, e.flops, e.bytes]),
      );
      throws(() => summarize([...serial.events, ...ts.events]), /cannot combine timings/);
    }
    serialProf.destroy();
  } finally {
    dev.createQuerySet = orig;
  }
});

Deno.test("profiler: copies and clears between kernels are timed in both modes; the replay changes nothing", async () => {
  const gpu = await getGpu();
  // 4 MiB per buffer, so that the copy takes measurable time; odd, so that the element-wise kernels read their
  // operands from buffers (a multiple of 4 is staged into textures on CPU adapters: more copies)
  const n = (1 << 20) + 1;
  const host = { x: randomF32(n, 31), y: randomF32(n, 32), z: randomF32(n, 33), w: randomF32(n, 34) };
  const tex = gpu.device.createTexture({
    size: [64, 16],
    format: "rgba32float",
    usage: GPUTextureUsage.COPY_DST | GPUTextureUsage.TEXTURE_BINDING,
  });
  const run = async (prof: DispatchProfiler | null) => {
    const b = Object.fromEntries(Object.entries(host).map(([key, v]) => [key, gpu.upload(v, key)]));
    const rec = new Recorder(gpu);
    rec.observer = prof;
    add(rec, { a: b.x, b: b.y, out: b.z, n });
    rec.copy(b.z, 0, b.w, 0, n * 4);
    scale(rec, { x: b.z, n, alpha: 2 }); // a replayed copy into w would now write 2z
    rec.clear(b.y);
    add(rec, { a: b.x, b: b.x, out: b.y, n }); // a replayed clear of y would now zero it
    rec.copyBufferToTexture({ buffer: b.x, bytesPerRow: 64 * 16 }, { texture: tex }, [64, 16]);
    await rec.read(b.z, 1);
    rec.observer = null;
    const events = prof ? await prof.collect() : [];
    const out: Record<string, Float32Array> = {};
    for (const [key, buf] of Object.entries(b)) out[key] = await gpu.read(buf, n);
    return { events, out };
  };
  const plain = await run(null);
  const profilers: DispatchProfiler[] = [new SerialProfiler(gpu)];
  if (hasTimestamps(gpu)) profilers.push(new KernelProfiler(gpu));
  for (const prof of profilers) {
    const { events, out } = await run(prof);
    for (const key of Object.keys(host)) {
      // first difference only: a diff of two 4 MiB arrays would take minutes to print
      const i = out[key].findIndex((v, j) => !Object.is(v, plain.out[key][j]));
      strictEqual(
        i,
        -1,
        `${prof.mode}: buffer ${key} differs at ${i}: ${out[key][i]} vs ${plain.out[key][i]}`,
      );
    }
    deepStrictEqual(
      events.map((e) =>
        e.kind === "kernel" ? [e.kind, e.label] : [e.kind, e.label, e.shape, e.bytes, e.groups, e.flops]
      ),
      [
        ["kernel", "add"],
        ["transfer", "copy", `${4 * n}B`, 8 * n, [0, 0, 0], 0],
        ["kernel", "scale"],
        ["transfer", "clear", `${4 * n}B`, 4 * n, [0, 0, 0], 0],
        ["kernel", "add"],
        ["transfer", "copy-to-texture", "64x16", 2 * 64 * 16 * 16, [0, 0, 0], 0],
      ],
      prof.mode,
    );
    for (const e of events) {
      ok(Number.isFinite(e.durationNs) && e.durationNs >= 0, `${prof.mode}: ${e.label} duration`);
      strictEqual(e.timing, prof.mode);
    }
    for (let i = 1; i < events.length; i++) {
      ok(events[i].startNs >= events[i - 1].startNs, `${prof.mode}: order`);
    }
    if (prof.mode === "timestamps") {
      ok(events[1].durationNs > 0, "the 4 MiB copy took measurable time");
      // the copy lies between the kernels around it
      ok(events[1].startNs >= events[0].startNs + events[0].durationNs);
      ok(events[2].startNs >= events[1].startNs + events[1].durationNs);
    }
    const rows = summarize(events);
    strictEqual(rows.find((r) => r.label === "copy")!.calls, 1);
    const trace = chromeTrace(events).traceEvents;
    deepStrictEqual(trace.map((e) => e.cat), [
      "kernel",
      "transfer",
      "kernel",
      "transfer",
      "kernel",
      "transfer",
    ]);
    prof.destroy?.();
  }
  tex.destroy();
});

Deno.test("profiler: serial repeats divide the time; a long GEMM reads as nonzero", async () => {
  const gpu = await getGpu();
  const s = 192;
  const a = gpu.upload(randomF32(s * s, 21)), b = gpu.upload(randomF32(s * s, 22));
  const c = gpu.upload(randomF32(s * s, 23));
  const rec = new Recorder(gpu);
  const prof = new SerialProfiler(gpu, { repeats: 3 });
  rec.observer = prof;
  gemm(rec, { a, b, c, m: s, n: s, k: s });
  await rec.read(c, 1);
  rec.observer = null;
  const events = await prof.collect();
  ok(events.length >= 1);
  ok(events.some((e) => e.label.startsWith("gemm") && e.durationNs > 0), "the GEMM took measurable time");
  prof.destroy();
  throws(() => new SerialProfiler(gpu, { repeats: 0 }), /repeats must be a positive integer/);
});

Deno.test("profiler: mode selection", async () => {
  const gpu = await getGpu();
  const noTs = { features: new Set<string>() } as unknown as Gpu;
  strictEqual(resolveTimingMode(noTs, "auto"), "serial");
  strictEqual(resolveTimingMode(noTs, "serial"), "serial");
  throws(() => resolveTimingMode(noTs, "timestamps"), /no 'timestamp-query'/);
  throws(() => resolveTimingMode(gpu, "gpu" as "auto"), /timestamps, serial or auto/);
  strictEqual(resolveTimingMode(gpu, "auto"), hasTimestamps(gpu) ? "timestamps" : "serial");
  strictEqual(createProfiler(gpu, "serial").mode, "serial");
  strictEqual(createProfiler(gpu, "auto").mode, resolveTimingMode(gpu, "auto"));
});

const TINY: EncoderConfigLike = {
  hiddenSize: 12,
  numLayers: 1,
  numHeads: 3,
  intermediateSize: 20,
  layerNormEps: 1e-5,
  padTokenId: 1,
  vocabSize: 50,
  maxPositionEmbeddings: 40,
  typeVocabSize: 1,
};

async function tinyModel(): Promise<{ model: RobertaModel; dir: string }> {
  const dir = await writeTinyModel(TINY, 7, "fedlodrop-profiler-model-");
  const model = await RobertaModel.load(dir, {
    numLabels: 2,
    lora: { r: 2, alpha: 4, targets: ["query", "value"] },
    seed: 3,
  });
  return { model, dir };
}

function tinyData(n: number): EncodedExample[] {
  const r = new KeyedRandom([5, Purpose.test, 0x9a]);
  return Array.from({ length: n }, (_, i) => {
    const len = 4 + (i % 5);
    const ids = Int32Array.from({ length: len }, (_, j) => j === 0 ? 0 : 3 + Math.floor(r.uniform() * 40));
    return { ids, label: i % 2 };
  });
}

Deno.test("profiler: trainLocal hook profiles exactly the first N steps, training unchanged", async () => {
  const { model, dir } = await tinyModel();
  try {
    const rec = model.recorder;
    const data = tinyData(6);
    const opts = {
      seed: 1,
      round: 0,
      device: 0,
      epochs: 1,
      batch: 2,
      lr: 1e-2,
      warmupRatio: 0,
      weightDecay: 0.01,
    };
    const initial = await model.getAdapter();
    // Without a profiler.
    const plainRes = await trainLocal(model, data, TINY.padTokenId, opts);
    const plainAdapter = await model.getAdapter();
    // With the serial profiler on the first 2 of 3 steps (the mode that replays work on the device).
    model.setAdapter(initial);
    const out = await Deno.makeTempDir({ prefix: "fedlodrop-profiler-out-" });
    const logs: string[] = [];
    const prof = profileFirstSteps(model.gpu, 2, out, (t) => logs.push(t), "serial");
    const counts: number[] = [];
    const observers: unknown[] = [];
    const res = await trainLocal(model, data, TINY.padTokenId, {
      ...opts,
      profiler: prof,
      onStep: () => {
        counts.push(rec.dispatchCount);
        observers.push(rec.observer);
      },
    });
    strictEqual(res.steps, 3);
    deepStrictEqual(res, plainRes, "same losses and counts with the profiler");
    const adapter = await model.getAdapter();
    for (const [name, v] of plainAdapter) deepStrictEqual(adapter.get(name), v, `adapter tensor ${name}`);
    // Exactly two profiled steps, each with as many kernel events as the step dispatched, and its copies.
    ok(prof.done);
    strictEqual(prof.stepDispatches.length, 2);
    strictEqual(prof.stepDispatches[1], counts[1] - counts[0]);
    ok(prof.stepDispatches[0] > 0);
    ok(prof.stepTransfers[1] > 0, "a model step copies (the [CLS] rows) and clears");
    const all = (i: number) => prof.stepDispatches[i] + prof.stepTransfers[i];
    deepStrictEqual(observers, [null, null, null], "the observer is detached after every step");
    // The model is untouched: no own trainStep, the prototype's method.
    ok(!Object.hasOwn(model, "trainStep"));
    strictEqual(model.trainStep, RobertaModel.prototype.trainStep);
    // Files: the CSV sums both steps, the trace is the last one.
    const csv = (await Deno.readTextFile(`${out}/profile.csv`)).trim().split("\n");
    const calls = csv.slice(1).reduce((s, l) => s + Number(l.split(",")[2]), 0);
    strictEqual(calls, all(0) + all(1));
    for (const line of csv.slice(1)) ok(line.endsWith(`,${TIMING_LABELS.serial}`));
    const trace = JSON.parse(await Deno.readTextFile(`${out}/trace.json`));
    strictEqual(trace.traceEvents.length, all(1));
    strictEqual(trace.otherData.timing, TIMING_LABELS.serial);
    ok(logs.some((l) => l.includes("first 2 local steps") && l.includes(TIMING_LABELS.serial)));
    // A failed step detaches and records nothing; an observer that was there before is restored.
    const other = new SerialProfiler(model.gpu);
    const p2 = profileFirstSteps(model.gpu, 1, out, () => {}, "serial");
    rec.observer = other;
    p2.beforeStep(rec);
    ok(rec.observer !== other && rec.observer !== null);
    await p2.afterStep(rec, true);
    strictEqual(rec.observer, other);
    strictEqual(p2.stepDispatches.length, 0);
    rec.observer = null;
    await Deno.remove(out, { recursive: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("profiler: serial and timestamp modes see the same dispatches of a model step", async () => {
  const gpu = await getGpu();
  if (!hasTimestamps(gpu)) return;
  const { model, dir } = await tinyModel();
  try {
    const rec = model.recorder;
    const data = tinyData(2);
    const input = {
      inputIds: new Int32Array(2 * 8).map((_, i) =>
        i % 8 >= data[i >> 3].ids.length ? 1 : data[i >> 3].ids[i % 8]
      ),
      batch: 2,
      seqLen: 8,
      labels: [0, 1],
    };
    const labels: string[][] = [];
    for (const prof of [new KernelProfiler(gpu), new SerialProfiler(gpu)] as DispatchProfiler[]) {
      rec.observer = prof;
      const loss = await model.trainStep(input, { lr: 1e-3, step: 1 });
      rec.observer = null;
      ok(Number.isFinite(loss));
      const events = await prof.collect();
      ok(events.length > 10);
      labels.push(events.map((e) => `${e.label}:${e.shape}:${e.groups.join("x")}`));
      checkTrace(events, TIMING_LABELS[prof.mode]);
      prof.destroy?.();
    }
    deepStrictEqual(labels[1], labels[0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
