/**
 * The WebGPU device: adapter selection with a clear error when there is none, the adapter's own limits and
 * useful features requested, a pipeline cache keyed by kernel variant, and `device.lost` reported loudly.
 * @module
 */

/** Limits this project asks the adapter for (its own maxima, not WebGPU's small defaults). */
const WANTED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
  "maxStorageTexturesPerShaderStage",
  "maxTextureDimension2D",
  "maxBindGroups",
  "maxUniformBufferBindingSize",
] as const;

/** Optional features used when the adapter has them. */
const WANTED_FEATURES = ["shader-f16", "timestamp-query"] as const;

/** One WebGPU device with the project's pipeline cache. */
export class Gpu {
  /** The underlying WebGPU device. */
  readonly device: GPUDevice;
  /** The adapter's description (name, vendor, whether it is a CPU fallback such as llvmpipe). */
  readonly info: GPUAdapterInfo;
  /** Features granted on the device. */
  readonly features: ReadonlySet<string>;
  /** Limits granted on the device. */
  readonly limits: GPUSupportedLimits;
  /** True for CPU adapters (llvmpipe, lavapipe, SwiftShader): kernels pick their CPU-friendly variants. */
  readonly isCpu: boolean;
  /**
   * Kernel parameters (`var<uniform> p`) are bound as a read-only storage buffer instead (see
   * {@link paramsToStorage}). True on Mesa's lavapipe (Vulkan on the CPU), whose uniform inlining compiled a
   * new shader for nearly every dispatch and never freed it: ~8 ms and ~1.2 MiB per texture GEMM, +118 MiB of
   * RSS per roberta-base training step (bench/NOTES.md entry 31). Storage buffers are not inlined.
   */
  readonly paramsInStorage: boolean;
  #detectedCpu: boolean;
  #pipelines = new Map<string, GPUComputePipeline>();
  #lost: string | null = null;
  #pendingWriteBytes = 0;

  /**
   * @param opts.paramsInStorage bind kernel parameters as storage (default: on lavapipe only, see
   * {@link isLavapipe}).
   * @param opts.isCpu choose the kernel variants of this adapter class instead of the detected one (to run the
   * GPU variants on llvmpipe in tests; default: detected).
   */
  constructor(
    device: GPUDevice,
    info: GPUAdapterInfo,
    opts: { paramsInStorage?: boolean; isCpu?: boolean } = {},
  ) {
    this.device = device;
    this.info = info;
    this.features = new Set([...device.features]);
    this.limits = device.limits;
    const d = `${info.description} ${info.device} ${info.vendor}`.toLowerCase();
    const detectedCpu = info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|software/.test(d);
    this.#detectedCpu = detectedCpu;
    this.isCpu = opts.isCpu ?? detectedCpu;
    this.paramsInStorage = opts.paramsInStorage ?? isLavapipe(detectedCpu, this.features);
    device.lost.then((e) => {
      this.#lost = `${e.reason}: ${e.message}`;
      if (e.reason !== "destroyed") {
        console.error(`fedlodrop: the WebGPU device was lost (${this.#lost}); the run cannot continue.`);
      }
    });
  }

  /** Throws when the device has been lost, with the reason the driver gave. */
  checkAlive(): void {
    if (this.#lost) {
      throw new Error(`WebGPU device lost (${this.#lost}); restart the run (checkpoints allow --resume)`);
    }
  }

  /**
   * A compute pipeline, compiled once per `key` (the kernel name plus every constant that shapes its code).
   * Compilation errors are thrown with the kernel's key and the WGSL compiler's messages. `code` may be a
   * function: generated kernels pass their generator so that the WGSL is built only on the key's first use,
   * not on every dispatch.
   */
  pipeline(key: string, code: string | (() => string), entryPoint = "main"): GPUComputePipeline {
    let p = this.#pipelines.get(key);
    if (p) return p;
    this.checkAlive();
    this.device.pushErrorScope("validation");
    const wgsl = typeof code === "function" ? code() : code;
    const module = this.device.createShaderModule({
      code: this.paramsInStorage ? paramsToStorage(wgsl) : wgsl,
      label: key,
    });
    p = this.device.createComputePipeline({ layout: "auto", compute: { module, entryPoint }, label: key });
    this.device.popErrorScope().then((err) => {
      if (err) console.error(`fedlodrop: WGSL kernel ${key} failed validation: ${err.message}`);
    });
    this.#pipelines.set(key, p);
    return p;
  }

  /** Number of distinct pipelines compiled so far. */
  get pipelineCount(): number {
    return this.#pipelines.size;
  }

  /** A storage buffer of `bytes` (rounded up to 4), usable as kernel input/output and copy source/target. */
  buffer(bytes: number, label = "buffer"): GPUBuffer {
    this.checkAlive();
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    if (size > this.limits.maxBufferSize) {
      throw new Error(
        `buffer ${label} needs ${size} bytes, above this adapter's maxBufferSize ${this.limits.maxBufferSize}`,
      );
    }
    return this.device.createBuffer({
      size,
      label,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
  }

  /** A storage buffer holding a copy of `data`. */
  upload(data: Float32Array | Int32Array | Uint32Array, label = "upload"): GPUBuffer {
    const b = this.buffer(data.byteLength, label);
    this.write(b, data);
    return b;
  }

  /** Writes `data` into `buf` at byte offset `offset` (queued before the next submit). */
  write(buf: GPUBuffer, data: Float32Array | Int32Array | Uint32Array, offset = 0): void {
    if (data.byteLength === 0) return; // Deno 2.9's writeBuffer panics on an empty write
    this.device.queue.writeBuffer(buf, offset, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    this.#pendingWriteBytes += data.byteLength;
  }

  /**
   * Bytes written by {@link write} since the last {@link flushWrites} (an upper bound on what is still queued).
   * The queue holds a staging copy of each write until a submission carries it, so these bytes are resident
   * twice until then.
   */
  get pendingWriteBytes(): number {
    return this.#pendingWriteBytes;
  }

  /**
   * Submits the queued writes and waits until they are done, which frees their staging copies, when more than
   * `threshold` bytes are pending. Loading calls this every few tensors: without it, a model's weights would sit
   * in the queue's staging memory as well until the first step (2× the weights at the peak).
   */
  async flushWrites(threshold = 0): Promise<void> {
    if (this.#pendingWriteBytes <= threshold) return;
    this.checkAlive();
    this.device.queue.submit([]);
    this.#pendingWriteBytes = 0;
    await this.device.queue.onSubmittedWorkDone();
  }

  /** Reads `count` f32 values of `buf` back to the host (one device-to-host wait). */
  async read(buf: GPUBuffer, count: number, offset = 0): Promise<Float32Array> {
    this.checkAlive();
    const bytes = count * 4;
    const staging = this.device.createBuffer({
      size: Math.max(4, bytes),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(buf, offset * 4, staging, 0, bytes);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    this.checkAlive();
    return out;
  }

  /** A one-line description for verbose output: adapter name, CPU/GPU, the limits that matter. */
  describe(): string {
    const l = this.limits;
    const mib = (x: number) => `${(x / 2 ** 20).toFixed(0)} MiB`;
    return `${this.info.description || this.info.vendor || "unknown adapter"} (${
      this.#detectedCpu ? "CPU fallback" : "GPU"
    }` +
      `; maxStorageBufferBindingSize ${mib(l.maxStorageBufferBindingSize)}, maxBufferSize ${
        mib(l.maxBufferSize)
      }` +
      `, workgroup storage ${l.maxComputeWorkgroupStorageSize} B, invocations ${l.maxComputeInvocationsPerWorkgroup}` +
      `, texture2D ${l.maxTextureDimension2D}; features: ${
        [...this.features].filter((f) => (WANTED_FEATURES as readonly string[]).includes(f)).join(", ") ||
        "none"
      }${this.paramsInStorage ? "; kernel parameters in a storage buffer" : ""}${
        this.isCpu === this.#detectedCpu
          ? ""
          : `; ${this.isCpu ? "CPU" : "GPU"} kernel variants (FEDLODROP_KERNELS)`
      })`;
  }
}

/**
 * Whether a device is Mesa's lavapipe (Vulkan) rather than llvmpipe through GL: both report "llvmpipe" as their
 * name, and wgpu's GL backend never offers `shader-f16`, which lavapipe does (Mesa 22.3). A wrong answer costs
 * speed or memory, never correctness ({@link Gpu.paramsInStorage}).
 */
export function isLavapipe(isCpu: boolean, features: ReadonlySet<string>): boolean {
  return isCpu && features.has("shader-f16");
}

/**
 * `wgsl` with the kernel parameters `var<uniform> p` declared as `var<storage, read> p` (the recorder's
 * parameter buffer has both usages), and `main` reading them once into a local `p` (`let p = p;`): every `p.…`
 * is a load of its own, and storage loads cost where uniform ones do not (llvmpipe: a loop over the lanes).
 * Every kernel names its parameter struct `p` and its entry point `main`.
 *
 * @example
 * ```ts
 * paramsToStorage("@group(0) @binding(0) var<uniform> p: P;\nfn main() { x = p.n; }");
 * // "@group(0) @binding(0) var<storage, read> p: P;\nfn main() {\n  let p = p; x = p.n; }"
 * ```
 */
export function paramsToStorage(wgsl: string): string {
  const out = wgsl.replace(/var<uniform>(\s+p\s*:)/g, "var<storage, read>$1");
  const at = out.search(/\bfn\s+main\s*\(/);
  if (out === wgsl || at < 0) return out;
  const body = out.indexOf("{", at) + 1;
  return `${out.slice(0, body)}\n  let p = p;${out.slice(body)}`;
}

/** The value of environment variable `name` if set (one of `allowed`, else an error); undefined without it. */
function envChoice(name: string, allowed: string[]): string | undefined {
  let v: string | undefined;
  try {
    v = Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: the default choice
  }
  if (v !== undefined && !allowed.includes(v)) {
    throw new Error(`${name} must be ${allowed.map((a) => `"${a}"`).join(" or ")}, got "${v}"`);
  }
  return v;
}

let shared: Promise<Gpu> | null = null;

/**
 * The process-wide device, created on first use with the adapter's own limits.
 *
 * @example
 * ```ts
 * const gpu = await getGpu({ verbose: true });
 * const buf = gpu.upload(new Float32Array([1, 2, 3]));
 * console.log(await gpu.read(buf, 3));
 * ```
 */
export function getGpu(opts: { verbose?: boolean } = {}): Promise<Gpu> {
  if (!shared) {
    shared = createGpu(opts).catch((e) => {
      shared = null;
      throw e;
    });
  }
  return shared;
}

async function createGpu(opts: { verbose?: boolean }): Promise<Gpu> {
  const nav = globalThis.navigator as Navigator & { gpu?: GPU };
  if (!nav.gpu) {
    throw new Error(
      "WebGPU is not available in this Deno process: run with --unstable-webgpu (the deno tasks do).",
    );
  }
  let adapter = await nav.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) adapter = await nav.gpu.requestAdapter();
  if (!adapter) {
    throw new Error(
      "No WebGPU adapter found (tried navigator.gpu.requestAdapter with high-performance and default preference). " +
        "A real GPU driver (Vulkan) or Mesa's software rasteriser provides one: on Debian/Ubuntu " +
        "`apt-get install libgl1-mesa-dri` (llvmpipe, GL) or `mesa-vulkan-drivers` (lavapipe, Vulkan).",
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === "number") requiredLimits[name] = v;
  }
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  // FEDLODROP_KERNEL_PARAMS=uniform|storage overrides where kernel parameters live, FEDLODROP_KERNELS=cpu|gpu
  // which adapter class's kernel variants run (default: Gpu's choices).
  const params = envChoice("FEDLODROP_KERNEL_PARAMS", ["uniform", "storage"]);
  const kernels = envChoice("FEDLODROP_KERNELS", ["cpu", "gpu"]);
  const gpu = new Gpu(device, adapter.info, {
    paramsInStorage: params === undefined ? undefined : params === "storage",
    isCpu: kernels === undefined ? undefined : kernels === "cpu",
  });
  device.addEventListener("uncapturederror", (ev) => {
    console.error(`fedlodrop: WebGPU error: ${(ev as GPUUncapturedErrorEvent).error.message}`);
  });
  if (opts.verbose) console.error(`fedlodrop: WebGPU adapter: ${gpu.describe()}`);
  return gpu;
}
