/**
 * Records many kernel dispatches into one command buffer and submits them at once. Each dispatch gets its
 * own small uniform slot (u32 fields first, then f32 fields, in the order given), packed into one arena
 * that is written with a single `writeBuffer` at submit time. Binding 0 of every kernel is that uniform
 * struct; bindings 1.. are the storage buffers in the order passed.
 *
 * A profiler hook sees every dispatch (label, workgroups, FLOP and byte counts); with none attached the
 * recorder adds no timestamp queries and no work.
 *
 * Host cost per dispatch is kept low because a training step records hundreds of them (bench/NOTES.md entry 27):
 * - bind groups are reused: a dispatch that binds the same pipeline, uniform slot and resources as one of an
 *   earlier submit (a training step records the same dispatches every step) gets that submit's bind group,
 *   whose uniform slot is rewritten with this submit's values. The cache holds at most
 *   {@link BIND_GROUP_CACHE_MAX} entries and is emptied when full.
 * - without an observer, the dispatches between two copies share one compute pass (WebGPU synchronises
 *   dispatches inside a pass like dispatches of separate passes); with one, each dispatch gets its own pass
 *   so that it can be timed.
 * @module
 */
import type { Gpu } from "./device.ts";

/** Bytes per uniform slot (WebGPU's minUniformBufferOffsetAlignment is at most 256). */
const SLOT = 256;
/** Uniform slots per command buffer; a step that records more is split into several submits. */
const SLOTS = 4096;
/** Bind groups a recorder keeps for reuse (a roberta-large training step and an evaluation pass bind ~1800). */
export const BIND_GROUP_CACHE_MAX = 8192;

/** Identity numbers of pipelines, buffers and views, for bind-group cache keys. */
const ids = new WeakMap<object, number>();
let nextId = 0;
function idOf(o: object): number {
  let id = ids.get(o);
  if (id === undefined) ids.set(o, id = nextId++);
  return id;
}

/** `getBindGroupLayout(0)` per pipeline (each call crosses into the WebGPU implementation). */
const layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();
function layoutOf(p: GPUComputePipeline): GPUBindGroupLayout {
  let l = layouts.get(p);
  if (!l) layouts.set(p, l = p.getBindGroupLayout(0));
  return l;
}

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

/**
 * A copy or clear recorded between dispatches (staging operands into textures, copying rows, zeroing
 * gradients): what a profiler times besides kernels. `bytes` is what it writes.
 */
export type Transfer =
  | { kind: "copy"; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; bytes: number }
  | {
    kind: "copy-to-texture";
    source: GPUTexelCopyBufferInfo;
    destination: GPUTexelCopyTextureInfo;
    size: [number, number, number];
    bytes: number;
  }
  | { kind: "clear"; buffer: GPUBuffer; offset: number; bytes: number };

/** Records `t` into `encoder` (the recorder's encoding, also used by the serial profiler's replay). */
export function encodeTransfer(encoder: GPUCommandEncoder, t: Transfer): void {
  if (t.kind === "copy") encoder.copyBufferToBuffer(t.src, t.srcOffset, t.dst, t.dstOffset, t.bytes);
  else if (t.kind === "clear") encoder.clearBuffer(t.buffer, t.offset, t.bytes);
  else encoder.copyBufferToTexture(t.source, t.destination, t.size);
}

/** Bytes per texel of the texture formats this project copies into (0 for others: their bytes are not counted). */
const TEXEL_BYTES: Record<string, number> = { rgba32float: 16, rg32float: 8, r32float: 4, rgba16float: 8 };

/** Observes dispatches; `kernels/profiler.ts` implements it with timestamp queries. */
export interface DispatchObserver {
  /** Called per dispatch; may return timestamp writes for the compute pass. */
  onDispatch(d: Dispatch, encoder: GPUCommandEncoder): GPUComputePassTimestampWrites | undefined;
  /** Called right before a copy or clear is encoded (optional; e.g. to write a timestamp before it). */
  beforeTransfer?(t: Transfer, encoder: GPUCommandEncoder): void;
  /** Called right after a copy or clear is encoded. */
  afterTransfer?(t: Transfer, encoder: GPUCommandEncoder): void;
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
  /** Bind groups created since construction (the rest were reused; for tests and overhead accounting). */
  bindGroupsCreated = 0;
  #bindGroups = new Map<string, GPUBindGroup>();

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
        // STORAGE too: on some adapters kernels read their parameters as storage (Gpu.paramsInStorage).
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
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
    this.#transfer({ kind: "copy", src, srcOffset, dst, dstOffset, bytes });
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
    const e = "width" in size ? [size.width, size.height, size.depthOrArrayLayers] : [...size];
    const extent: [number, number, number] = [e[0]!, e[1] ?? 1, e[2] ?? 1];
    const bytes = extent[0] * extent[1] * extent[2] * (TEXEL_BYTES[destination.texture.format] ?? 0);
    this.#transfer({ kind: "copy-to-texture", source, destination, size: extent, bytes });
  }

  /** Records zeroing `bytes` of `buf` from `offset` (to its end when `bytes` is not given). */
  clear(buf: GPUBuffer, offset = 0, bytes?: number): void {
    this.#transfer({ kind: "clear", buffer: buf, offset, bytes: bytes ?? buf.size - offset });
  }

  #transfer(t: Transfer): void {
    this.#flushPending();
    const enc = this.encoder;
    this.observer?.beforeTransfer?.(t, enc);
    encodeTransfer(enc, t);
    this.observer?.afterTransfer?.(t, enc);
  }

  // Dispatches are turned into compute passes lazily (at a copy or at submit).
  #flushPending(): void {
    if (this.#pending.length === 0) return;
    const enc = this.encoder;
    let shared: GPUComputePassEncoder | null = null;
    for (const { d, slot } of this.#pending) {
      const bindGroup = this.#bindGroup(d, slot);
      const [x, y = 1, z = 1] = d.groups;
      if (this.observer) {
        const timestampWrites = this.observer.onDispatch(d, enc);
        const pass = enc.beginComputePass(timestampWrites ? { timestampWrites } : undefined);
        pass.setPipeline(d.pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(x, y, z);
        pass.end();
      } else {
        shared ??= enc.beginComputePass();
        shared.setPipeline(d.pipeline);
        shared.setBindGroup(0, bindGroup);
        shared.dispatchWorkgroups(x, y, z);
      }
    }
    shared?.end();
    this.#pending = [];
  }

  /** The bind group of a dispatch in uniform slot `slot`: reused from an earlier submit when one matches. */
  #bindGroup(d: Dispatch, slot: number): GPUBindGroup {
    const hasUniforms = (d.u32?.length ?? 0) + (d.f32?.length ?? 0) > 0;
    let key = `${idOf(d.pipeline)}:${hasUniforms ? slot : "-"}`;
    for (const b of d.buffers) key += `:${idOf(b)}`;
    let bg = this.#bindGroups.get(key);
    if (bg) return bg;
    const entries: GPUBindGroupEntry[] = [];
    if (hasUniforms) {
      entries.push({
        binding: 0,
        resource: { buffer: this.#ensureArena(), offset: slot * SLOT, size: SLOT },
      });
    }
    d.buffers.forEach((b, i) =>
      entries.push({ binding: i + 1, resource: b instanceof GPUBuffer ? { buffer: b } : b })
    );
    bg = this.gpu.device.createBindGroup({ layout: layoutOf(d.pipeline), entries });
    this.bindGroupsCreated++;
    if (this.#bindGroups.size >= BIND_GROUP_CACHE_MAX) this.#bindGroups.clear();
    this.#bindGroups.set(key, bg);
    return bg;
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
