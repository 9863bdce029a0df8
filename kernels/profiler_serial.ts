/**
 * Fallback kernel profiler for adapters without `timestamp-query`: "serialized wall-clock" timing.
 *
 * While the step is recorded, {@link SerialProfiler} only captures each dispatch (pipeline, bindings,
 * uniform values, workgroups, counts); it adds nothing to the recorder's command buffers.
 * {@link SerialProfiler.collect} then waits for the step to finish and replays the captured dispatches one
 * at a time, in recording order: each dispatch is encoded in its own compute pass and command buffer,
 * submitted, and awaited with `queue.onSubmittedWorkDone()`, with `performance.now()` around the submit and
 * the wait. The measured time of an empty submit (the host round trip, about 11 ms on llvmpipe) is
 * subtracted, clamped at 0, so kernels much shorter than the round trip's jitter read as noise; `repeats` > 1
 * submits that many copies of the dispatch (each in its own command buffer) per wait and divides, which
 * amortises the round trip.
 *
 * The replay must not change the model: every storage buffer a dispatch binds is replaced by a scratch buffer
 * of the same size holding a copy of the buffer's current (end-of-step) contents, made in an untimed submit
 * before the timed one (a buffer without `COPY_SRC` usage, which `Gpu.buffer` never makes, is replayed on
 * scratch of unspecified contents). Texture views are bound as recorded: the only ones in this project are
 * the GEMM packing textures, scratch that the replayed packing dispatch rewrites right before each GEMM.
 * Timings are therefore those of the same kernels, shapes and workgroups on end-of-step data; call `collect`
 * before any buffer of the step is destroyed.
 *
 * Copies and clears between kernels (`Transfer`s) are captured and replayed the same way: a buffer they write
 * is replaced by scratch, a texture they write (the GEMM staging textures, rewritten before each use) is
 * written as recorded, and a buffer they read is read as recorded.
 *
 * @example
 * ```ts
 * const prof = new SerialProfiler(rec.gpu);
 * rec.observer = prof;
 * await model.trainStep(input, { lr: 1e-4, step: 1 });
 * rec.observer = null;
 * const events = await prof.collect(); // one TimedDispatch per dispatch, timing "serial"
 * prof.destroy();
 * ```
 * @module
 */
import type { Gpu } from "./device.ts";
import { type Dispatch, encodeTransfer, type Transfer } from "./recorder.ts";
import { type DispatchProfiler, type TimedDispatch, untimed } from "./profiler.ts";

/** Bytes of the replay's uniform buffer (the recorder's slot size). */
const UNIFORM_BYTES = 256;
/** Empty submits measured for the round-trip overhead. */
const OVERHEAD_SAMPLES = 5;

/** Options of {@link SerialProfiler}. */
export interface SerialProfilerOptions {
  /** Command buffers (one dispatch each) submitted per timed wait; the time is divided by it (default 1). */
  repeats?: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Observer that captures dispatches and times them one at a time afterwards (see the module docs). */
export class SerialProfiler implements DispatchProfiler {
  /** Always `"serial"`: serialized wall-clock times, not GPU timestamps. */
  readonly mode = "serial" as const;
  readonly gpu: Gpu;
  /** Command buffers per timed wait. */
  readonly repeats: number;
  /** Median wall time of an empty submit and wait, in ns, measured by the last {@link collect}. */
  overheadNs = 0;
  #captured: (Dispatch | Transfer)[] = [];
  #scratch = new Map<number, GPUBuffer[]>();
  #uniform: GPUBuffer | null = null;

  /** Creates the profiler; `repeats` must be a positive integer. */
  constructor(gpu: Gpu, opts: SerialProfilerOptions = {}) {
    const repeats = opts.repeats ?? 1;
    if (!Number.isInteger(repeats) || repeats < 1) {
      throw new Error(`SerialProfiler: repeats must be a positive integer, got ${repeats}`);
    }
    this.gpu = gpu;
    this.repeats = repeats;
  }

  /** Captures the dispatch (copies of its arrays); never adds timestamp writes. */
  onDispatch(d: Dispatch, _encoder: GPUCommandEncoder): undefined {
    this.#captured.push({
      ...d,
      buffers: [...d.buffers],
      u32: d.u32 ? [...d.u32] : undefined,
      f32: d.f32 ? [...d.f32] : undefined,
      groups: [...d.groups] as Dispatch["groups"],
    });
    return undefined;
  }

  /** Captures a copy or clear (a shallow copy: the buffers and texture stay the recorded ones). */
  beforeTransfer(t: Transfer, _encoder: GPUCommandEncoder): void {
    this.#captured.push(t.kind === "copy-to-texture" ? { ...t, size: [...t.size] } : { ...t });
  }

  /** Nothing to resolve. */
  beforeFinish(_encoder: GPUCommandEncoder): void {}

  /** Nothing to do: timing happens in {@link collect}. */
  afterSubmit(): void {}

  /** Dispatches captured and not yet collected. */
  get pending(): number {
    return this.#captured.length;
  }

  async #wait(): Promise<void> {
    await this.gpu.device.queue.onSubmittedWorkDone();
  }

  async #roundTripNs(): Promise<number> {
    const dev = this.gpu.device;
    const samples: number[] = [];
    for (let i = 0; i < OVERHEAD_SAMPLES; i++) {
      const cb = dev.createCommandEncoder().finish();
      const t0 = performance.now();
      dev.queue.submit([cb]);
      await this.#wait();
      samples.push((performance.now() - t0) * 1e6);
    }
    return median(samples);
  }

  /** The `index`-th scratch buffer of `size` bytes (created on first use, kept for reuse). */
  #scratchBuffer(size: number, index: number): GPUBuffer {
    let list = this.#scratch.get(size);
    if (!list) this.#scratch.set(size, list = []);
    while (list.length <= index) list.push(this.gpu.buffer(size, `serial profiler scratch ${size}B`));
    return list[index];
  }

  /**
   * Waits for the recorded work, then replays and times every captured dispatch, in order; returns one
   * {@link TimedDispatch} per dispatch (timing `"serial"`, starts in ns of `performance.now()`).
   */
  async collect(): Promise<TimedDispatch[]> {
    const items = this.#captured;
    this.#captured = [];
    if (items.length === 0) return [];
    const dev = this.gpu.device;
    await this.#wait();
    this.overheadNs = await this.#roundTripNs();
    this.#uniform ??= dev.createBuffer({
      size: UNIFORM_BYTES,
      // STORAGE too: on some adapters kernels read their parameters as storage (Gpu.paramsInStorage).
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      label: "serial profiler uniforms",
    });
    const out: TimedDispatch[] = [];
    for (const item of items) {
      const cbs = "pipeline" in item ? await this.#stageDispatch(item) : this.#stageTransfer(item);
      // Timed: submit and wait.
      const t0 = performance.now();
      dev.queue.submit(cbs);
      await this.#wait();
      const wallNs = (performance.now() - t0) * 1e6;
      out.push({
        ...untimed(item),
        startNs: t0 * 1e6,
        durationNs: Math.max(0, wallNs - this.overheadNs) / this.repeats,
        timing: "serial",
      });
    }
    return out;
  }

  /**
   * Untimed: copies the dispatch's buffers into scratch and writes its uniforms; returns the `repeats` command
   * buffers to time.
   */
  async #stageDispatch(d: Dispatch): Promise<GPUCommandBuffer[]> {
    const dev = this.gpu.device;
    const stage = dev.createCommandEncoder({ label: `serial profiler stage ${d.label}` });
    const subst = new Map<GPUBuffer, GPUBuffer>();
    const used = new Map<number, number>();
    for (const b of d.buffers) {
      if (!(b instanceof GPUBuffer) || subst.has(b)) continue;
      const k = used.get(b.size) ?? 0;
      used.set(b.size, k + 1);
      const s = this.#scratchBuffer(b.size, k);
      if (b.usage & GPUBufferUsage.COPY_SRC) stage.copyBufferToBuffer(b, 0, s, 0, b.size);
      subst.set(b, s);
    }
    const nu = d.u32?.length ?? 0, nf = d.f32?.length ?? 0;
    const entries: GPUBindGroupEntry[] = [];
    if (nu + nf > 0) {
      const host = new ArrayBuffer(UNIFORM_BYTES);
      const u = new Uint32Array(host), f = new Float32Array(host);
      for (let j = 0; j < nu; j++) u[j] = d.u32![j] >>> 0;
      for (let j = 0; j < nf; j++) f[nu + j] = d.f32![j];
      dev.queue.writeBuffer(this.#uniform!, 0, host);
      entries.push({ binding: 0, resource: { buffer: this.#uniform!, offset: 0, size: UNIFORM_BYTES } });
    }
    d.buffers.forEach((b, i) =>
      entries.push({ binding: i + 1, resource: b instanceof GPUBuffer ? { buffer: subst.get(b)! } : b })
    );
    dev.queue.submit([stage.finish()]);
    await this.#wait();
    const bindGroup = dev.createBindGroup({ layout: d.pipeline.getBindGroupLayout(0), entries });
    const [x, y = 1, z = 1] = d.groups;
    const cbs: GPUCommandBuffer[] = [];
    for (let r = 0; r < this.repeats; r++) {
      const enc = dev.createCommandEncoder({ label: `serial profiler ${d.label}` });
      const pass = enc.beginComputePass();
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(x, y, z);
      pass.end();
      cbs.push(enc.finish());
    }
    return cbs;
  }

  /** The `repeats` command buffers of a transfer, the buffer it writes replaced by scratch. */
  #stageTransfer(t: Transfer): GPUCommandBuffer[] {
    const replayed: Transfer = t.kind === "copy"
      ? { ...t, dst: this.#scratchBuffer(t.dst.size, 0) }
      : t.kind === "clear"
      ? { ...t, buffer: this.#scratchBuffer(t.buffer.size, 0) }
      : t;
    const cbs: GPUCommandBuffer[] = [];
    for (let r = 0; r < this.repeats; r++) {
      const enc = this.gpu.device.createCommandEncoder({ label: `serial profiler ${t.kind}` });
      encodeTransfer(enc, replayed);
      cbs.push(enc.finish());
    }
    return cbs;
  }

  /** Frees the scratch and uniform buffers (the profiler stays usable; they are recreated on demand). */
  destroy(): void {
    for (const list of this.#scratch.values()) for (const b of list) b.destroy();
    this.#scratch.clear();
    this.#uniform?.destroy();
    this.#uniform = null;
  }
}
