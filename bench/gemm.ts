/**
 * `deno task bench gemm [--reps N] [--inner N] [--peak-gflops P] [--no-baseline] [--no-ts] [--attention-only]
 * [--attention-shape B,heads,T,d] [--lora-only]`: the WGSL GEMM on the projection shapes of roberta-large
 * (y = x·Wᵀ, sizes given as M×K×N: M tokens, K input features, N output features) and on the LoRA shapes
 * (r = 8), against a plain TypeScript triple loop (timed on a block of rows and scaled) and a reference
 * library's fp32 matmul (bench/gemm_baseline.py): numpy (OpenBLAS) on CPU adapters, torch on CUDA (TF32 off) on
 * GPU adapters, so that the baseline runs on the same processor as our kernels. Also times the masked-LoRA
 * forward and backward kernels (`--lora-only`: nothing else), each with its sums over rows or features done
 * both ways (one pass, splits).
 *
 * Each timing records `--inner` products into one command buffer and divides (default 1 on CPU adapters, where
 * one product takes milliseconds; 20 on GPU adapters, where a single submit and wait would dominate).
 * `--peak-gflops P` (the card's fp32 peak, e.g. 66900 for an H100 SXM) adds each rate as a share of it.
 * `--no-numpy` is the old name of `--no-baseline`.
 * @module
 */
import { getGpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import { autoTexturePath, gemm, gemmAutoOptions, gemmTileFor } from "../kernels/gemm.ts";
import { TEXTURE_GEMM_TILE } from "../kernels/gemm_texture.ts";
import { LORA_SPLIT_COLS, LORA_SPLIT_ROWS, loraBackward, loraForward } from "../kernels/lora.ts";
import {
  BLOCKED_SHARED_GEMM_TILE,
  BLOCKED_SMALL_SHARED_GEMM_TILE,
  LARGE_SHARED_GEMM_TILE,
  type SharedGemmTile,
} from "../kernels/gemm_shared.ts";

/** Workgroup-memory tiles that `bench gemm` times beside "auto" on GPU adapters. */
const SHARED_VARIANTS: [string, SharedGemmTile][] = [
  ["shared 128×128", LARGE_SHARED_GEMM_TILE],
  ["blocked 128×128", BLOCKED_SHARED_GEMM_TILE],
  ["blocked 64×64", BLOCKED_SMALL_SHARED_GEMM_TILE],
];

/** Shapes as [M, K, N] of y[M, N] = x[M, K] · W[N, K]ᵀ. */
const SHAPES: [number, number, number][] = [
  [2048, 1024, 1024],
  [2048, 1024, 4096],
  [2048, 4096, 1024],
  [2048, 1024, 8],
  [2048, 8, 1024],
];

/** Which kernel family gemm's "auto" path takes for an m × n × k product. */
function autoPath(isCpu: boolean, m: number, n: number, k: number, batches = 1): string {
  if (!isCpu) return "shared";
  return autoTexturePath(isCpu, m, n, k, batches) ? "texture" : "buffer";
}

/** Deterministic bench data (values do not matter for timing; no RNG needed). */
function pattern(n: number, mod: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (i % mod) / mod - 0.5;
  return a;
}

/** Milliseconds with three significant digits (CPU adapters take ms per product, GPUs µs). */
function ms(sec: number): string {
  const v = sec * 1000;
  return v >= 100 ? v.toFixed(0) : v.toPrecision(3);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Products recorded per timed submit (`--inner`); set by {@link run}. */
let innerReps = 1;

/**
 * Median seconds per call of `record`, from timings of `innerReps` calls recorded into one submit plus the wait
 * for completion, after one warm-up (which compiles).
 */
async function timeGpu(device: GPUDevice, rec: Recorder, reps: number, record: () => void): Promise<number> {
  record();
  rec.submit();
  await device.queue.onSubmittedWorkDone();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    for (let j = 0; j < innerReps; j++) record();
    rec.submit();
    await device.queue.onSubmittedWorkDone();
    times.push((performance.now() - t0) / 1000 / innerReps);
  }
  return median(times);
}

/** The plain TypeScript triple loop y = x·Wᵀ on the first `rows` rows; returns seconds. */
function tsLoop(
  x: Float32Array,
  w: Float32Array,
  y: Float32Array,
  rows: number,
  k: number,
  n: number,
): number {
  const t0 = performance.now();
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += x[i * k + p] * w[j * k + p];
      y[i * n + j] = s;
    }
  }
  return (performance.now() - t0) / 1000;
}

/** The baseline's GFLOP/s per shape key "M,K,N", with its label. */
interface BaselineRates {
  /** "numpy" or "torch-cuda". */
  label: string;
  rates: Map<string, number>;
  /** The BLAS library the baseline ran on (numpy: the one its process loaded; "cuBLAS" for torch). */
  blas: string;
  /** numpy ran on Debian's reference BLAS (not a fair baseline). */
  blasReference: boolean;
}

/**
 * Times the {@link SHAPES} with bench/gemm_baseline.py: numpy on CPU adapters, torch on CUDA on GPU adapters.
 * Tries `/usr/bin/python3` (Debian's packages) and then `python3` on the PATH; returns the rates of the first
 * that runs, or why none did.
 */
async function baselineRates(isCpu: boolean, reps: number, inner: number): Promise<BaselineRates | string> {
  const backend = isCpu ? "numpy" : "torch-cuda";
  const script = new URL("./gemm_baseline.py", import.meta.url).pathname;
  const env = { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" };
  const reasons: string[] = [];
  for (const py of ["/usr/bin/python3", "python3"]) {
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command(py, {
        args: [script, backend, String(reps), String(inner), ...SHAPES.map((s) => s.join(","))],
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch {
      reasons.push(`${py}: not installed`);
      continue;
    }
    if (!out.success) {
      reasons.push(`${py}: ${new TextDecoder().decode(out.stderr).trim().split("\n").pop()}`);
      continue;
    }
    const rates = new Map<string, number>();
    let blas = "unknown", blasReference = false;
    for (const line of new TextDecoder().decode(out.stdout).trim().split("\n")) {
      const r = JSON.parse(line) as {
        shape: number[];
        gflops: number;
        blas?: string;
        blas_reference?: boolean;
      };
      rates.set(r.shape.join(","), r.gflops);
      blas = r.blas ?? blas;
      blasReference = r.blas_reference ?? blasReference;
    }
    return { label: backend, rates, blas, blasReference };
  }
  const hint = isCpu ? "apt-get install python3-numpy" : "a Python whose torch sees the CUDA card";
  return `${backend}: skipped (${reasons.join("; ")}; ${hint})`;
}

/**
 * The batched attention products of roberta-base at batch 8 × seq 128 (B·heads = 96 batch elements, T = 128,
 * d = 64, Q/K/V/context inside [B·T, H] with H = 768, scores/probs [B, heads, T, T]): S = Q·Kᵀ (also the shape
 * of dP = dC·Vᵀ), C = P·V (also dQ = dS·K) and dV = Pᵀ·dC (also dK = dSᵀ·Q), each on the buffer-fed kernels,
 * the texture-fed one and gemm's "auto" choice, in the same run. `--attention-shape B,heads,T,d` picks another
 * model's shape (e.g. MiniLM at batch 16 × seq 32: 16,12,32,32).
 */
async function attentionProducts(
  rec: Recorder,
  reps: number,
  [B, nh, T, d]: readonly number[] = [8, 12, 128, 64],
): Promise<void> {
  const gpu = rec.gpu;
  const H = nh * d;
  const tok: [number, number] = [T * H, d], att: [number, number] = [nh * T * T, T * T];
  const q = gpu.upload(pattern(B * T * H, 1000), "Q"), kk = gpu.upload(pattern(B * T * H, 997), "K");
  const p = gpu.upload(pattern(B * nh * T * T, 991), "P"), s = gpu.buffer(B * nh * T * T * 4, "S");
  const ctx = gpu.buffer(B * T * H * 4, "ctx");
  const batch: [number, number] = [B, nh];
  type Path = "buffer" | "texture" | "auto";
  // [name, n, record]: every product is T × n × k per batch element, with n·k = T·d.
  const cases: [string, number, (path: Path) => void][] = [
    [
      `S = Q·Kᵀ  b${B * nh} ${T}×${d}×${T}`,
      T,
      (path) =>
        gemm(rec, {
          a: q,
          b: kk,
          c: s,
          m: T,
          n: T,
          k: d,
          transB: true,
          lda: H,
          ldb: H,
          ldc: T,
          alpha: 0.125,
          batch,
          strideA: tok,
          strideB: tok,
          strideC: att,
          path,
        }),
    ],
    [
      `C = P·V   b${B * nh} ${T}×${T}×${d}`,
      d,
      (path) =>
        gemm(rec, {
          a: p,
          b: kk,
          c: ctx,
          m: T,
          n: d,
          k: T,
          lda: T,
          ldb: H,
          ldc: H,
          batch,
          strideA: att,
          strideB: tok,
          strideC: tok,
          path,
        }),
    ],
    [
      `dV = Pᵀ·dC b${B * nh} ${T}×${T}×${d}`,
      d,
      (path) =>
        gemm(rec, {
          a: p,
          b: q,
          c: ctx,
          m: T,
          n: d,
          k: T,
          transA: true,
          lda: T,
          ldb: H,
          ldc: H,
          batch,
          strideA: att,
          strideB: tok,
          strideC: tok,
          path,
        }),
    ],
  ];
  const flops = B * nh * 2 * T * T * d;
  const gf = (sec: number) => `${ms(sec)} ms, ${(flops / sec / 1e9).toFixed(2)} GFLOP/s`;
  for (const [name, n, call] of cases) {
    const t: Record<Path, number> = { buffer: 0, texture: 0, auto: 0 };
    for (const path of ["buffer", "texture", "auto"] as const) {
      t[path] = await timeGpu(gpu.device, rec, reps, () => call(path));
    }
    console.log(
      `${name}: buffer ${gf(t.buffer)} | texture ${gf(t.texture)} | auto (${
        autoPath(
          gpu.isCpu,
          T,
          n,
          (T * d) / n,
          B * nh,
        )
      }) ${gf(t.auto)} | load ${Deno.readTextFileSync("/proc/loadavg").split(" ")[0]}`,
    );
  }
  for (const b of [q, kk, p, s, ctx]) b.destroy();
}

/** Entry point for `deno task bench gemm`. */
export async function run(args: string[]): Promise<void> {
  const flag = (name: string) => args.includes(name);
  const numberAfter = (name: string): number | null => {
    const at = args.indexOf(name);
    return at >= 0 ? Number(args[at + 1]) : null;
  };
  const reps = numberAfter("--reps") ?? 5;
  if (!Number.isInteger(reps) || reps < 1) throw new Error(`bench gemm: --reps needs a positive integer`);
  const peak = numberAfter("--peak-gflops");
  if (peak !== null && !(peak > 0)) throw new Error(`bench gemm: --peak-gflops needs a positive number`);
  Deno.env.set("XDG_RUNTIME_DIR", Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp");
  const gpu = await getGpu();
  innerReps = numberAfter("--inner") ?? (gpu.isCpu ? 1 : 20);
  if (!Number.isInteger(innerReps) || innerReps < 1) {
    throw new Error(`bench gemm: --inner needs a positive integer`);
  }
  const ofPeak = (gflops: number) => peak === null ? "" : ` (${(100 * gflops / peak).toFixed(1)} % of peak)`;
  const tile = gemmTileFor(gpu);
  const texCols = gemmAutoOptions.tileCols.join(" or ");
  console.log(`adapter: ${gpu.describe()}`);
  console.log(
    `gemm tile: ${tile.wx}x${tile.wy} invocations, ${tile.tm}x${tile.tn ?? 4} outputs each (vec4 kernel; ` +
      `${tile.tm}x4 in the scalar one); texture kernel ${TEXTURE_GEMM_TILE.wx}x${TEXTURE_GEMM_TILE.wy} ` +
      `invocations, ${TEXTURE_GEMM_TILE.tm}x(${texCols}) outputs each (the widest that fits n); ` +
      `shapes are M×K×N of y = x·Wᵀ ` +
      `(x [M,K], W [N,K], transB); median of ${reps} after a warm-up, ${innerReps} product(s) per submit` +
      (peak === null ? "" : `; fp32 peak given: ${peak} GFLOP/s`),
  );
  const shapeAt = Deno.args.indexOf("--attention-shape");
  if (flag("--attention-only") || shapeAt >= 0) {
    const shape = shapeAt >= 0 ? (Deno.args[shapeAt + 1] ?? "").split(",").map(Number) : undefined;
    if (shape && (shape.length !== 4 || !shape.every((v) => Number.isInteger(v) && v >= 1))) {
      throw new Error(
        `--attention-shape expects B,heads,T,d (four positive integers), got ${Deno.args[shapeAt + 1]}`,
      );
    }
    await attentionProducts(new Recorder(gpu), reps, shape);
    return;
  }
  if (flag("--lora-only")) return await loraBranch(new Recorder(gpu), reps);
  const base = flag("--no-baseline") || flag("--no-numpy")
    ? "baseline: skipped (--no-baseline)"
    : await baselineRates(gpu.isCpu, reps, innerReps);
  if (typeof base === "string") console.log(base);
  else {
    // Debian's python3-numpy alone runs the reference BLAS (~4 GFLOP/s): not a baseline anyone would use.
    console.log(
      `baseline: ${base.label} through ${base.blas}` +
        (base.blasReference
          ? " (the reference BLAS, not OpenBLAS: apt-get install libopenblas0-pthread)"
          : ""),
    );
  }
  const rec = new Recorder(gpu);
  for (const [m, k, n] of SHAPES) {
    const xh = pattern(m * k, 1000), wh = pattern(n * k, 997);
    const x = gpu.upload(xh, "x"), w = gpu.upload(wh, "W"), y = gpu.buffer(m * n * 4, "y");
    const flops = 2 * m * n * k;
    // The kernel families in the same run (the machine's load changes between runs): buffer-fed, then "auto"
    // (the texture-fed kernel where gemm takes it on a CPU adapter, the workgroup-memory one on a GPU), and on
    // GPU adapters also the workgroup-memory kernel with its 128 × 128 tile.
    const times: Record<string, number> = {};
    for (const path of ["buffer", "auto"] as const) {
      times[path] = await timeGpu(
        gpu.device,
        rec,
        reps,
        () => gemm(rec, { a: x, b: w, c: y, m, n, k, transB: true, path }),
      );
    }
    // GPU adapters: the other workgroup-memory tiles, the strided 128 × 128 and the blocked kernel (entry 45).
    const extra: [string, number][] = [];
    for (const [name, sharedTile] of gpu.isCpu ? [] : SHARED_VARIANTS) {
      const t = await timeGpu(
        gpu.device,
        rec,
        reps,
        () => gemm(rec, { a: x, b: w, c: y, m, n, k, transB: true, path: "shared", sharedTile }),
      );
      extra.push([name, t]);
    }
    const sec = times.auto, rate = flops / sec / 1e9;
    let line = `gemm ${m}×${k}×${n}: buffer ${ms(times.buffer)} ms, ${
      (flops / times.buffer / 1e9).toFixed(2)
    } GFLOP/s${ofPeak(flops / times.buffer / 1e9)} | auto (${autoPath(gpu.isCpu, m, n, k)}) ${ms(sec)} ms, ${
      rate.toFixed(2)
    } GFLOP/s${ofPeak(rate)}`;
    for (const [name, t] of extra) {
      line += ` | ${name} ${ms(t)} ms, ${(flops / t / 1e9).toFixed(2)} GFLOP/s${ofPeak(flops / t / 1e9)}`;
    }
    if (!flag("--no-ts")) {
      // A block of rows worth ~5e7 FLOP keeps the loop under a second; the full shape would take minutes.
      const rows = Math.min(m, Math.max(1, Math.round(5e7 / (2 * n * k))));
      const yh = new Float32Array(rows * n);
      tsLoop(xh, wh, yh, 1, k, n); // warm-up (JIT)
      const tsSec = tsLoop(xh, wh, yh, rows, k, n);
      line += ` | TS loop ${
        (2 * rows * n * k / tsSec / 1e9).toFixed(2)
      } GFLOP/s (${rows} of ${m} rows, scaled)`;
    }
    if (typeof base !== "string") {
      const b = base.rates.get(`${m},${k},${n}`)!;
      line += ` | ${base.label} ${b.toFixed(2)} GFLOP/s${ofPeak(b)} | ${
        (rate / b).toFixed(2)
      }x vs ${base.label}`;
    }
    console.log(line);
    for (const b of [x, w, y]) b.destroy();
  }
  // The two backward products of a 1024 -> 1024 projection: dX = dY·W (op(B) = B) and dW = dYᵀ·X (transA).
  {
    const m = 2048, nIn = 1024, nOut = 1024;
    const dy = gpu.upload(pattern(m * nOut, 101), "dY"), w = gpu.upload(pattern(nOut * nIn, 997), "W");
    const x = gpu.upload(pattern(m * nIn, 1000), "x");
    const dx = gpu.buffer(m * nIn * 4, "dX"), dw = gpu.buffer(nOut * nIn * 4, "dW");
    const cases = [
      [
        "dX = dY·W   2048×1024×1024",
        (path: "buffer" | "auto") => gemm(rec, { a: dy, b: w, c: dx, m, n: nIn, k: nOut, path }),
      ],
      [
        "dW = dYᵀ·X  1024×2048×1024",
        (path: "buffer" | "auto") =>
          gemm(rec, { a: dy, b: x, c: dw, m: nOut, n: nIn, k: m, transA: true, path }),
      ],
    ] as const;
    for (const [name, call] of cases) {
      const bSec = await timeGpu(gpu.device, rec, reps, () => call("buffer"));
      const aSec = await timeGpu(gpu.device, rec, reps, () => call("auto"));
      const flops = 2 * m * nIn * nOut;
      console.log(
        `${name}: buffer ${ms(bSec)} ms, ${(flops / bSec / 1e9).toFixed(2)} GFLOP/s | auto ${ms(aSec)} ms, ${
          (flops / aSec / 1e9).toFixed(2)
        } GFLOP/s`,
      );
    }
    for (const b of [dy, w, x, dx, dw]) b.destroy();
  }
  await attentionProducts(rec, reps);
  await loraBranch(rec, reps);
}

/**
 * The masked LoRA branch of one adapted projection (roberta-large q/v: 1024 -> 1024, r = 8, lora_dropout 0.1),
 * forward and backward, each also with the adapter's other way of summing (t over the input features, dA and
 * dB over the rows: one pass, or splits of {@link LORA_SPLIT_COLS} / {@link LORA_SPLIT_ROWS}) in the same run.
 */
async function loraBranch(rec: Recorder, reps: number): Promise<void> {
  const gpu = rec.gpu;
  const m = 2048, nIn = 1024, nOut = 1024, r = 8;
  const bufs = {
    x: gpu.upload(pattern(m * nIn, 1000), "x"),
    a: gpu.upload(pattern(r * nIn, 13), "A"),
    b: gpu.upload(pattern(nOut * r, 7), "B"),
    maskA: gpu.upload(new Float32Array(nIn).fill(1), "mA"),
    maskB: gpu.upload(new Float32Array(nOut).fill(1), "mB"),
    t: gpu.buffer(m * r * 4, "t"),
    y: gpu.buffer(m * nOut * 4, "y"),
    dy: gpu.upload(pattern(m * nOut, 101), "dy"),
    dA: gpu.buffer(r * nIn * 4, "dA"),
    dB: gpu.buffer(nOut * r * 4, "dB"),
    dx: gpu.buffer(m * nIn * 4, "dx"),
  };
  const lora = {
    m,
    nIn,
    nOut,
    r,
    scale: 2,
    dropout: 0.1,
    dropKey: [1, 4, 0, 0] as [number, number, number, number],
  };
  const fSec = await timeGpu(gpu.device, rec, reps, () => loraForward(rec, { ...bufs, ...lora }));
  const bSec = await timeGpu(gpu.device, rec, reps, () => loraBackward(rec, { ...bufs, ...lora }));
  // The other way to reduce t over nIn and dA and dB over the m rows, in the same run: one pass on GPUs, splits
  // on CPUs.
  const otherCols = gpu.isCpu ? LORA_SPLIT_COLS : nIn, otherRows = gpu.isCpu ? LORA_SPLIT_ROWS : m;
  const foSec = await timeGpu(
    gpu.device,
    rec,
    reps,
    () => loraForward(rec, { ...bufs, ...lora, splitCols: otherCols }),
  );
  const oSec = await timeGpu(
    gpu.device,
    rec,
    reps,
    () => loraBackward(rec, { ...bufs, ...lora, splitRows: otherRows }),
  );
  const fFlops = 2 * m * r * (nIn + nOut), bFlops = 2 * m * r * (2 * nOut + 2 * nIn);
  console.log(
    `loraForward  ${m}×${nIn}→${nOut} r=${r} p=0.1: ${ms(fSec)} ms, ${
      (fFlops / fSec / 1e9).toFixed(2)
    } GFLOP/s (t ${gpu.isCpu ? "in one pass" : `in splits of ${LORA_SPLIT_COLS} features`}) | ${
      ms(foSec)
    } ms with ${gpu.isCpu ? `splits of ${LORA_SPLIT_COLS} features` : "one pass"} (default ${
      (foSec / fSec).toFixed(2)
    }x as fast)`,
  );
  console.log(
    `loraBackward ${m}×${nIn}→${nOut} r=${r} p=0.1 (dA, dB, dx): ${ms(bSec)} ms, ${
      (bFlops / bSec / 1e9).toFixed(2)
    } GFLOP/s (dA, dB ${gpu.isCpu ? "in one pass" : `in splits of ${LORA_SPLIT_ROWS} rows`}) | ${
      ms(oSec)
    } ms with ${gpu.isCpu ? `splits of ${LORA_SPLIT_ROWS} rows` : "one pass"} (default ${
      (oSec / bSec).toFixed(2)
    }x as fast)`,
  );
  for (const b of Object.values(bufs)) b.destroy();
}
