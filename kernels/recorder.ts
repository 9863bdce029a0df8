/**
 * Records many kernel dispatches into one command buffer and submits them at once. Each dispatch gets its
 * own small uniform slot (u32 fields first, then f32 fields, in the order given), packed into one arena
 * that is written with a single `writeBuffer` at submit time. Binding 0 of every kernel is that uniform
 * struct; bindings 1.. are the storage buffers in the order passed.
 *
 * A profiler hook sees every dispatch (label, workgroups, FLOP and byte counts); with none attached the
 * recorder adds no timestamp queries and no work.
 * @module
 */
import type { Gpu } from "./device.ts";

/** Bytes per uniform slot (WebGPU's minUniformBufferOffsetAlignment is at most 256). */
const SLOT = 256;
/** Uniform slots per command buffer; a step that records more is split into several submits. */
const SLOTS = 4096;

/** One kernel launch. */
export interface Dispatch {
  /** The compiled pipeline (from `Gpu.pipeline`). */
  pipeline: GPUComputePipeline;
  /** Storage buffers (bound whole) or texture views, bound at 1, 2, … in this order. */
  buffers: (GPUBuffer | GPUTextureView)[];
  /** Unsigned integer uniforms, first in the uniform struct. */
  u32?: number[];
  /** Float uniforms, after the u32 fields. */
  f32?: number[];
  /** Workgroup counts. */
  groups: [number, number?, number?];
  /** Kernel name for profiling, e.g. `gemm`. */
  label: string;
  /** Shape string for grouping in the profiler, e.g. `2048x1024x1024`. */
  shape?: string;
  /** Floating-point operations this dispatch performs (for GFLOP/s). */
  flops?: number;
  /** Bytes it must read and write at least (for GB/s). */
  bytes?: number;
}

/** Observes dispatches; `kernels/profiler.ts` implements it with timestamp queries. */
export interface DispatchObserver {
  /** Called per dispatch; may return timestamp writes for the compute pass. */
  onDispatch(d: Dispatch, encoder: GPUCommandEncoder): GPUComputePassTimestampWrites | undefined;
  /** Called once the command buffer is about to be finished (resolve queries here). */
  beforeFinish(encoder: GPUCommandEncoder): void;
  /** Called after submit. */
  afterSubmit(): void;
}

/** Records dispatches and copies; `submit()` sends them as one command buffer. */
export class Recorder {
  readonly gpu: Gpu;
  /** Observer for profiling; null costs nothing. */
  observer: DispatchObserver | null = null;
  #encoder: GPUCommandEncoder | null = null;
  #arena: GPUBuffer | null = null;
  #host = new ArrayBuffer(SLOT * SLOTS);
  #slots = 0;
  /** Dispatches recorded since construction (for tests and overhead accounting). */
  dispatchCount = 0;
  /** Submits since construction. */
  submitCount = 0;

  constructor(gpu: Gpu) {
    this.gpu = gpu;
  }

  get encoder(): GPUCommandEncoder {
    if (!this.#encoder) this.#encoder = this.gpu.device.createCommandEncoder();
    return this.#encoder;
  }

  #slot(d: Dispatch): number {
    const i = this.#slots++;
    const nu = d.u32?.length ?? 0;
    const nf = d.f32?.length ?? 0;
    if ((nu + nf) * 4 > SLOT) throw new Error(`kernel ${d.label}: too many uniforms (${nu + nf})`);
    const u = new Uint32Array(this.#host, i * SLOT, SLOT / 4);
    const f = new Float32Array(this.#host, i * SLOT, SLOT / 4);
    u.fill(0);
    for (let j = 0; j < nu; j++) u[j] = d.u32![j] >>> 0;
    for (let j = 0; j < nf; j++) f[nu + j] = d.f32![j];
    return i;
  }

  #ensureArena(): GPUBuffer {
    if (!this.#arena) {
      this.#arena = this.gpu.device.createBuffer({
        size: SLOT * SLOTS,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        label: "uniform arena",
      });
    }
    return this.#arena;
  }

  /** Records one dispatch. Buffers are bound whole. */
  dispatch(d: Dispatch): void {
    const [x, y = 1, z = 1] = d.groups;
    if (x === 0 || y === 0 || z === 0) return;
    const max = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new Error(
        `kernel ${d.label}: ${x}x${y}x${z} workgroups exceed this adapter's ${max} per dimension`,
      );
    }
    if (this.#slots === SLOTS) this.submit();
    const slot = this.#slot(d);
    this.#pending.push({ d, slot });
    this.dispatchCount++;
  }

  #pending: { d: Dispatch; slot: number }[] = [];

  /** Records a buffer-to-buffer copy (in bytes). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.#flushPending();
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /**
   * Records a buffer-to-texture copy (after every dispatch recorded so far, like `copy`), e.g. staging an
   * operand into a texture that a later kernel reads with `textureLoad`.
   */
  copyBufferToTexture(
    source: GPUTexelCopyBufferInfo,
    destination: GPUTexelCopyTextureInfo,
    size: GPUExtent3D,
  ): void {
    this.#flushPending();
    this.encoder.copyBufferToTexture(source, destination, size);
  }

  /** Records zeroing `bytes` of `buf` from `offset`. */
  clear(buf: GPUBuffer, offset = 0, bytes?: number): void {
    this.#flushPending();
    this.encoder.clearBuffer(buf, offset, bytes);
  }

  // Dispatches are turned into compute passes lazily (at a copy or at submit).
  #flushPending(): void {
    if (this.#pending.length === 0) return;
    const arena = this.#ensureArena();
    const dev = this.gpu.device;
    const enc = this.encoder;
    for (const { d, slot } of this.#pending) {
      const entries: GPUBindGroupEntry[] = [];
      const hasUniforms = (d.u32?.length ?? 0) + (d.f32?.length ?? 0) > 0;
      if (hasUniforms) {
        entries.push({ binding: 0, resource: { buffer: arena, offset: slot * SLOT, size: SLOT } });
      }
      d.buffers.forEach((b, i) =>
        entries.push({ binding: i + 1, resource: b instanceof GPUBuffer ? { buffer: b } : b })
      );
      const bindGroup = dev.createBindGroup({ layout: d.pipeline.getBindGroupLayout(0), entries });
      const timestampWrites = this.observer?.onDispatch(d, enc);
      const pass = enc.beginComputePass(timestampWrites ? { timestampWrites } : undefined);
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, bindGroup);
      const [x, y = 1, z = 1] = d.groups;
      pass.dispatchWorkgroups(x, y, z);
      pass.end();
    }
    this.#pending = [];
  }

  /** Finishes and submits everything recorded so far as one command buffer. */
  submit(): void {
    this.gpu.checkAlive();
    this.#flushPending();
    if (!this.#encoder) {
      this.#slots = 0;
      return;
    }
    this.observer?.beforeFinish(this.#encoder);
    if (this.#slots > 0) {
      this.gpu.device.queue.writeBuffer(this.#arena!, 0, this.#host, 0, this.#slots * SLOT);
    }
    this.gpu.device.queue.submit([this.#encoder.finish()]);
    this.#encoder = null;
    this.#slots = 0;
    this.submitCount++;
    this.observer?.afterSubmit();
  }

  /** Submits what is recorded, then reads `count` f32 values of `buf` (the one host wait of a step). */
  async read(buf: GPUBuffer, count: number, offset = 0): Promise<Float32Array> {
    this.submit();
    return await this.gpu.read(buf, count, offset);
  }
}
