/**
 * Kernel profiler: a {@link DispatchObserver} that brackets every dispatch's compute pass with
 * `timestamp-query` writes, resolves them at the end of each command buffer and reads them back after
 * the step. Copies and clears between kernels (staging operands into textures, zeroing gradients) are
 * timed too, between two empty compute passes that write a timestamp right before and right after them; they
 * come back with `kind: "transfer"`. With no profiler attached the recorder adds no queries and no readbacks.
 * Adapters without `timestamp-query` use the serialized wall-clock fallback of `profiler_serial.ts`
 * ({@link createProfiler} picks one); every output (table, CSV, trace) names which timing produced it.
 *
 * @example
 * ```ts
 * const prof = new KernelProfiler(rec.gpu);
 * rec.observer = prof;
 * await model.trainStep(input, { lr: 1e-4, step: 1 });
 * rec.observer = null;
 * const events = await prof.collect(); // one TimedDispatch per dispatch, in order
 * ```
 * @module
 */
import type { Gpu } from "./device.ts";
import type { Dispatch, DispatchObserver, Recorder, Transfer } from "./recorder.ts";
import { SerialProfiler, type SerialProfilerOptions } from "./profiler_serial.ts";

/** Queries per query set (WebGPU caps a set at 4096); two per dispatch. */
const QUERIES_PER_SET = 4096;

/**
 * Where a dispatch's time comes from: `"timestamps"` (GPU `timestamp-query` around its compute pass) or
 * `"serial"` (wall clock around its own submit and wait, replayed one dispatch at a time).
 */
export type TimingMode = "timestamps" | "serial";

/** Human-readable name of each timing mode, written into every table, CSV and trace. */
export const TIMING_LABELS: Readonly<Record<TimingMode, string>> = {
  timestamps: "GPU timestamp-query",
  serial: "serialized wall-clock (no timestamp-query)",
};

/** One profiled dispatch (a kernel) or transfer (a copy or clear between kernels). */
export interface TimedDispatch {
  /** `"kernel"` for a dispatch; `"transfer"` for a copy or clear (label `copy`, `copy-to-texture`, `clear`). */
  kind: "kernel" | "transfer";
  /** Kernel name, or the transfer's kind. */
  label: string;
  /** Shape string ("" when the launcher gave none). */
  shape: string;
  /** Workgroups dispatched ([0, 0, 0] for a transfer). */
  groups: [number, number, number];
  /** FLOPs counted by the launcher (0 when none). */
  flops: number;
  /** Minimum bytes moved, counted by the launcher (0 when none). */
  bytes: number;
  /** Start, in nanoseconds of the GPU clock (only differences are meaningful). */
  startNs: number;
  /** Duration in nanoseconds. */
  durationNs: number;
  /** How the time was measured. */
  timing: TimingMode;
}

/** A dispatch observer that can report the time of every dispatch it saw. */
export interface DispatchProfiler extends DispatchObserver {
  /** How this profiler measures time. */
  readonly mode: TimingMode;
  /** Waits for the observed work and returns one {@link TimedDispatch} per dispatch, in recording order. */
  collect(): Promise<TimedDispatch[]>;
  /** Frees the profiler's own GPU resources. */
  destroy?(): void;
}

/**
 * What a transfer reports in a profile: its label, a shape (`W x H` texels for a texture copy, bytes for the
 * others) and the bytes it moves (read and written for a copy, written for a clear).
 */
function describeTransfer(t: Transfer): { label: string; shape: string; bytes: number } {
  if (t.kind === "copy-to-texture") {
    const [w, h, d] = t.size;
    return { label: t.kind, shape: d > 1 ? `${w}x${h}x${d}` : `${w}x${h}`, bytes: 2 * t.bytes };
  }
  return { label: t.kind, shape: `${t.bytes}B`, bytes: t.kind === "copy" ? 2 * t.bytes : t.bytes };
}

/** A timed dispatch or transfer without its times. */
export function untimed(item: Dispatch | Transfer): Omit<TimedDispatch, "startNs" | "durationNs" | "timing"> {
  if ("pipeline" in item) {
    const [x, y = 1, z = 1] = item.groups;
    return {
      kind: "kernel",
      label: item.label,
      shape: item.shape ?? "",
      groups: [x, y, z],
      flops: item.flops ?? 0,
      bytes: item.bytes ?? 0,
    };
  }
  return { kind: "transfer", groups: [0, 0, 0], flops: 0, ...describeTransfer(item) };
}

interface Pending {
  item: Dispatch | Transfer;
  set: GPUQuerySet;
  index: number;
}

interface Readback {
  buffer: GPUBuffer;
  resolve: GPUBuffer;
  items: Pending[];
}

/** True when the device was created with `timestamp-query`. */
export function hasTimestamps(gpu: Gpu): boolean {
  return gpu.features.has("timestamp-query");
}

/**
 * The timing mode `requested` resolves to on `gpu`: `"auto"` is `"timestamps"` when the device has
 * `timestamp-query`, else `"serial"`; asking for `"timestamps"` without the feature throws.
 */
export function resolveTimingMode(gpu: Gpu, requested: TimingMode | "auto"): TimingMode {
  if (requested === "auto") return hasTimestamps(gpu) ? "timestamps" : "serial";
  if (requested === "timestamps" && !hasTimestamps(gpu)) {
    throw new Error(
      "profiler mode 'timestamps': this device has no 'timestamp-query' feature " +
        "(use mode 'serial' or 'auto')",
    );
  }
  if (requested !== "timestamps" && requested !== "serial") {
    throw new Error(`profiler mode must be timestamps, serial or auto, got ${JSON.stringify(requested)}`);
  }
  return requested;
}

/**
 * A profiler for `gpu` in the given mode (see {@link resolveTimingMode}).
 *
 * @example
 * ```ts
 * const prof = createProfiler(rec.gpu, "auto");
 * rec.observer = prof;
 * // ... record and submit a step ...
 * rec.observer = null;
 * const rows = summarize(await prof.collect());
 * ```
 */
export function createProfiler(
  gpu: Gpu,
  mode: TimingMode | "auto",
  serial: SerialProfilerOptions = {},
): DispatchProfiler {
  return resolveTimingMode(gpu, mode) === "timestamps"
    ? new KernelProfiler(gpu)
    : new SerialProfiler(gpu, serial);
}

/** Observer that times each dispatch with timestamp queries (see the module documentation). */
export class KernelProfiler implements DispatchProfiler {
  /** Always `"timestamps"`. */
  readonly mode = "timestamps" as const;
  readonly gpu: Gpu;
  #free: GPUQuerySet[] = [];
  #current: { set: GPUQuerySet; used: number }[] = [];
  #items: Pending[] = [];
  #readbacks: Readback[] = [];
  #done: TimedDispatch[] = [];
  /** Query sets created so far (for tests). */
  querySetsCreated = 0;

  /** Throws a clear error when the device lacks `timestamp-query`. */
  constructor(gpu: Gpu) {
    if (!hasTimestamps(gpu)) {
      throw new Error(
        "KernelProfiler: this device has no 'timestamp-query' feature; GPU times cannot be measured",
      );
    }
    this.gpu = gpu;
  }

  #slot(): { set: GPUQuerySet; index: number } {
    let cur = this.#current[this.#current.length - 1];
    if (!cur || cur.used + 2 > QUERIES_PER_SET) {
      let set = this.#free.pop();
      if (!set) {
        set = this.gpu.device.createQuerySet({ type: "timestamp", count: QUERIES_PER_SET });
        this.querySetsCreated++;
      }
      cur = { set, used: 0 };
      this.#current.push(cur);
    }
    const index = cur.used;
    cur.used += 2;
    return { set: cur.set, index };
  }

  /** Gives the pass begin/end timestamp writes. */
  onDispatch(d: Dispatch, _encoder: GPUCommandEncoder): GPUComputePassTimestampWrites {
    const { set, index } = this.#slot();
    this.#items.push({ item: d, set, index });
    return { querySet: set, beginningOfPassWriteIndex: index, endOfPassWriteIndex: index + 1 };
  }

  /** Brackets a copy or clear: an empty compute pass writes a timestamp right before it… */
  beforeTransfer(t: Transfer, encoder: GPUCommandEncoder): void {
    const { set, index } = this.#slot();
    this.#items.push({ item: t, set, index });
    encoder.beginComputePass({ timestampWrites: { querySet: set, endOfPassWriteIndex: index } }).end();
  }

  /** …and another right after it. */
  afterTransfer(_t: Transfer, encoder: GPUCommandEncoder): void {
    const { set, index } = this.#items[this.#items.length - 1];
    encoder.beginComputePass({ timestampWrites: { querySet: set, beginningOfPassWriteIndex: index + 1 } })
      .end();
  }

  /** Resolves the queries of this command buffer into a mappable buffer. */
  beforeFinish(encoder: GPUCommandEncoder): void {
    if (this.#items.length === 0) return;
    // resolveQuerySet needs 256-byte aligned destination offsets: each set starts on a multiple of 32 queries.
    const align = (q: number) => Math.ceil(q / 32) * 32;
    const total = this.#current.reduce((s, c) => s + align(c.used), 0);
    const dev = this.gpu.device;
    const resolve = dev.createBuffer({
      size: total * 8,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      label: "profiler resolve",
    });
    const readback = dev.createBuffer({
      size: total * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: "profiler readback",
    });
    let offset = 0;
    const base = new Map<GPUQuerySet, number>();
    for (const c of this.#current) {
      encoder.resolveQuerySet(c.set, 0, c.used, resolve, offset * 8);
      base.set(c.set, offset);
      offset += align(c.used);
    }
    encoder.copyBufferToBuffer(resolve, 0, readback, 0, total * 8);
    const items = this.#items.map((p) => ({ ...p, index: base.get(p.set)! + p.index }));
    this.#readbacks.push({ buffer: readback, resolve, items });
    this.#free.push(...this.#current.map((c) => c.set));
    this.#current = [];
    this.#items = [];
  }

  /** Nothing to do: readback happens in {@link collect}. */
  afterSubmit(): void {}

  /** Waits for the submitted work, reads every timestamp back and returns the dispatches in order. */
  async collect(): Promise<TimedDispatch[]> {
    const pending = this.#readbacks;
    this.#readbacks = [];
    for (const rb of pending) {
      await rb.buffer.mapAsync(GPUMapMode.READ);
      const ts = new BigUint64Array(rb.buffer.getMappedRange().slice(0));
      rb.buffer.unmap();
      rb.buffer.destroy();
      rb.resolve.destroy();
      for (const it of rb.items) {
        const t0 = ts[it.index], t1 = ts[it.index + 1];
        this.#done.push({
          ...untimed(it.item),
          startNs: Number(t0),
          durationNs: t1 >= t0 ? Number(t1 - t0) : 0,
          timing: "timestamps",
        });
      }
    }
    const out = this.#done;
    this.#done = [];
    return out;
  }

  /** Destroys the idle query sets (call after {@link collect}; later dispatches create new ones). */
  destroy(): void {
    for (const set of this.#free) set.destroy();
    this.#free = [];
  }
}

/** Per-(kernel, shape) summary row. */
export interface KernelSummary {
  /** How the times were measured. */
  timing: TimingMode;
  label: string;
  shape: string;
  calls: number;
  totalMs: number;
  medianMs: number;
  /** Fraction of the summed time of all dispatches. */
  share: number;
  flops: number;
  bytes: number;
  gflops: number;
  gbps: number;
  /** gflops / peak GFLOP/s (NaN without a peak). */
  flopFraction: number;
  /** gbps / peak GB/s (NaN without a peak). */
  bwFraction: number;
}

/** Device ceilings measured in the same run. */
export interface Ceilings {
  gflops: number;
  gbps: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Groups dispatches by kernel and shape, sorted by total time (largest first).
 *
 * @example
 * ```ts
 * const rows = summarize(await prof.collect(), { gflops: 50, gbps: 10 });
 * ```
 */
export function summarize(events: TimedDispatch[], peak?: Ceilings): KernelSummary[] {
  const timing = timingOf(events);
  const groups = new Map<string, TimedDispatch[]>();
  for (const e of events) {
    const k = `${e.label}\u0000${e.shape}`;
    let g = groups.get(k);
    if (!g) groups.set(k, g = []);
    g.push(e);
  }
  const all = events.reduce((s, e) => s + e.durationNs, 0);
  const rows: KernelSummary[] = [];
  for (const g of groups.values()) {
    const ns = g.reduce((s, e) => s + e.durationNs, 0);
    const flops = g.reduce((s, e) => s + e.flops, 0);
    const bytes = g.reduce((s, e) => s + e.bytes, 0);
    const gflops = ns > 0 ? flops / ns : 0;
    const gbps = ns > 0 ? bytes / ns : 0;
    rows.push({
      timing: timing!,
      label: g[0].label,
      shape: g[0].shape,
      calls: g.length,
      totalMs: ns / 1e6,
      medianMs: median(g.map((e) => e.durationNs)) / 1e6,
      share: all > 0 ? ns / all : 0,
      flops,
      bytes,
      gflops,
      gbps,
      flopFraction: peak ? gflops / peak.gflops : NaN,
      bwFraction: peak ? gbps / peak.gbps : NaN,
    });
  }
  return rows.sort((a, b) => b.totalMs - a.totalMs);
}

/**
 * The one timing mode of `events` (undefined when empty); throws when events of both modes are mixed, since
 * their times are not comparable.
 */
export function timingOf(events: readonly { timing: TimingMode }[]): TimingMode | undefined {
  const modes = new Set(events.map((e) => e.timing));
  if (modes.size > 1) {
    throw new Error(`profiler: cannot combine timings ${[...modes].join(" and ")} in one summary or trace`);
  }
  return events[0]?.timing;
}

const CSV_HEAD =
  "kernel,shape,calls,total_ms,median_ms,share,flops,bytes,gflops,gbps,flop_fraction,bw_fraction,timing";

/** The summary as CSV text (header line first; the last column names the timing of each row). */
export function summaryCsv(rows: KernelSummary[]): string {
  const q = (s: string) => /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  const lines = rows.map((r) =>
    [
      q(r.label),
      q(r.shape),
      r.calls,
      r.totalMs,
      r.medianMs,
      r.share,
      r.flops,
      r.bytes,
      r.gflops,
      r.gbps,
      r.flopFraction,
      r.bwFraction,
      q(TIMING_LABELS[r.timing]),
    ].join(",")
  );
  return [CSV_HEAD, ...lines].join("\n") + "\n";
}

/**
 * Chrome trace-event JSON (one complete "X" event per dispatch, microseconds from the first start).
 * Opens in Perfetto or chrome://tracing. The timing is named in `otherData.timing` and in every event's
 * `args.timing`; `extra` is merged into `otherData`.
 */
export function chromeTrace(
  events: TimedDispatch[],
  extra: Record<string, unknown> = {},
): { traceEvents: Record<string, unknown>[]; otherData: Record<string, unknown> } {
  const t0 = events.length ? Math.min(...events.map((e) => e.startNs)) : 0;
  const mode = timingOf(events);
  const timing = mode ? TIMING_LABELS[mode] : "none";
  return {
    otherData: { timing, ...extra },
    traceEvents: events.map((e) => ({
      name: e.label,
      cat: e.kind,
      ph: "X",
      ts: (e.startNs - t0) / 1e3,
      dur: e.durationNs / 1e3,
      pid: 1,
      tid: 1,
      args: { shape: e.shape, groups: e.groups.join("x"), flops: e.flops, bytes: e.bytes, timing },
    })),
  };
}

/** The summary as a fixed-width text table, under a line naming the timing. */
export function summaryTable(rows: KernelSummary[]): string {
  const head = [
    "kernel",
    "shape",
    "calls",
    "total ms",
    "median ms",
    "share",
    "GFLOP/s",
    "GB/s",
    "%peakF",
    "%peakB",
  ];
  const body = rows.map((r) => [
    r.label,
    r.shape,
    String(r.calls),
    r.totalMs.toFixed(3),
    r.medianMs.toFixed(3),
    (100 * r.share).toFixed(1) + "%",
    r.gflops.toFixed(2),
    r.gbps.toFixed(2),
    Number.isNaN(r.flopFraction) ? "-" : (100 * r.flopFraction).toFixed(1),
    Number.isNaN(r.bwFraction) ? "-" : (100 * r.bwFraction).toFixed(1),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const fmt = (cells: string[]) => cells.map((c, i) => i < 2 ? c.padEnd(w[i]) : c.padStart(w[i])).join("  ");
  const mode = timingOf(rows);
  const title = `timing: ${mode ? TIMING_LABELS[mode] : "none (no dispatches)"}`;
  return [title, fmt(head), ...body.map(fmt)].join("\n");
}

/**
 * Profiles training steps on request of the step loop (`trainLocal`'s `profiler` option): the loop calls
 * {@link StepProfiler.beforeStep} before recording a step and {@link StepProfiler.afterStep} once it is done.
 * The implementation decides which steps it profiles (e.g. the first N) and what it writes.
 */
export interface StepProfiler {
  /** Called before a step is recorded on `rec` (attach an observer here). */
  beforeStep(rec: Recorder): void;
  /**
   * Called after the step, also when it threw (`failed` true: detach and discard). Must leave
   * `rec.observer` as it found it before {@link beforeStep}.
   */
  afterStep(rec: Recorder, failed?: boolean): Promise<void>;
}
