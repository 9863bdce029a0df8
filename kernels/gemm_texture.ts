/**
 * Texture-fed GEMM for CPU adapters (llvmpipe): C (=|+=) alpha·op(A)·op(B) (+ bias) for one (unbatched)
 * product. On llvmpipe every storage-buffer load at a computed address is a per-lane scalar loop with a bounds
 * check, while `textureLoad` from a read-only `texture_storage_2d<rgba32float, read>` is vectorised. So the
 * operands are first packed into two rgba32float textures (one small packing dispatch each):
 *
 * - `At`, height m, width ceil(k/4): texel (q, i) = op(A)[i, 4q..4q+3];
 * - `Bt`, width n, height ceil(k/4): texel (j, q) = op(B)[4q..4q+3, j];
 *
 * with the k-tail of the last texel zeroed, so the inner loop reads one vec4 along k per row of A and per column
 * of B. `Bt` is stored k-major so that the 8 SIMD lanes of llvmpipe (consecutive columns of C) read adjacent
 * texels, while all lanes read the same `At` texel (bench/NOTES.md, entry 11: ~20 % faster than n-major `Bt`).
 * Then a register-blocked kernel (each invocation a tm × tn block of C in scalar accumulators, rows and
 * columns strided by the workgroup size; no workgroup memory, no barriers) writes C with alpha, bias and
 * accumulate. Packing is O(mk + nk) against the product's O(mnk). The textures are cached per Gpu and role and
 * only grow; reusing one texture for consecutive products in one command buffer is safe because WebGPU orders
 * dispatches that write and read the same resource.
 *
 * `kernels/gemm.ts` decides when to take this path; `bench/NOTES.md` has the measurements.
 * @module
 */
import type { Gpu } from "./device.ts";
import type { Recorder } from "./recorder.ts";

/** Register blocking of the texture-fed GEMM. */
export interface TextureGemmTile {
  /** Workgroup width (invocations along n). */
  wx: number;
  /** Workgroup height (invocations along m). */
  wy: number;
  /** Rows of C per invocation. */
  tm: number;
  /** Columns of C per invocation (a multiple of 4). */
  tn: number;
}

/** Default tile: 8×8 invocations, 16 × 8 outputs each (32 vec4 of accumulators, the most before spilling). */
export const TEXTURE_GEMM_TILE: TextureGemmTile = { wx: 8, wy: 8, tm: 16, tn: 8 };

/** A strided view of one row-major operand: element (r, p) of the R × K matrix is at off + r·rs + p·ps. */
export interface PackedOperand {
  /** The buffer holding the operand. */
  buf: GPUBuffer;
  /** Rows of the packed matrix (m for op(A), n for op(B)ᵀ). */
  rows: number;
  /** Element offset. */
  off: number;
  /** Element stride between rows. */
  rs: number;
  /** Element stride along k. */
  ps: number;
}

/** Arguments of {@link gemmTexture}: already validated by `gemm`. */
export interface TextureGemmArgs {
  /** op(A) as an m × k view. */
  a: PackedOperand;
  /** op(B)ᵀ as an n × k view. */
  b: PackedOperand;
  /** Output buffer C. */
  c: GPUBuffer;
  /** Optional bias[n]. */
  bias?: GPUBuffer;
  /** Rows of C. */
  m: number;
  /** Columns of C. */
  n: number;
  /** Inner dimension (>= 1). */
  k: number;
  /** Row stride of C. */
  ldc: number;
  /** Element offset of C. */
  offC: number;
  /** Scale of the product. */
  alpha: number;
  /** Add into C instead of overwriting it. */
  accumulate: boolean;
  /** Register blocking (default {@link TEXTURE_GEMM_TILE}). */
  tile?: TextureGemmTile;
}

/**
 * WGSL of the packing kernel: one invocation per texel, 4 guarded loads along k, zero past k. The texel of row r
 * and k-group q goes to (q, r) (`kMajor` false, used for A) or (r, q) (`kMajor` true, used for B).
 */
export function packWgsl(kMajor: boolean): string {
  return /* wgsl */ `
struct P { rows: u32, k: u32, off: u32, rs: u32, ps: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let q = g.x;
  let r = g.y;
  if (r >= p.rows || q * 4u >= p.k) { return; }
  let base = p.off + r * p.rs + q * 4u * p.ps;
  var v = vec4<f32>(0.0);
  for (var u = 0u; u < 4u; u++) {
    if (q * 4u + u < p.k) { v[u] = src[base + u * p.ps]; }
  }
  textureStore(dst, ${kMajor ? "vec2<u32>(r, q)" : "vec2<u32>(q, r)"}, v);
}
`;
}

/** WGSL of the texture-fed GEMM for one tile and epilogue (exported for inspection and tests). */
export function gemmTextureWgsl(tile: TextureGemmTile, opts: { bias: boolean; accumulate: boolean }): string {
  const { wx, wy, tm, tn } = tile;
  const nv = tn / 4;
  const X = "xyzw";
  const L: string[] = [];
  for (let i = 0; i < tm; i++) L.push(`  let ra${i} = min(row0 + ${i * wy}u, p.m - 1u);`);
  for (let j = 0; j < tn; j++) L.push(`  let cb${j} = min(col0 + ${j * wx}u, p.n - 1u);`);
  for (let i = 0; i < tm; i++) for (let v = 0; v < nv; v++) L.push(`  var acc${i}_${v} = vec4<f32>(0.0);`);
  L.push(`  for (var q = 0u; q < p.kq; q++) {`);
  for (let j = 0; j < tn; j++) L.push(`    let b${j} = textureLoad(Bt, vec2<u32>(cb${j}, q));`);
  // Regroup B by k-component so that each FMA updates 4 columns at once.
  for (let c = 0; c < 4; c++) {
    for (let v = 0; v < nv; v++) {
      L.push(
        `    let bv${c}_${v} = vec4<f32>(${[0, 1, 2, 3].map((u) => `b${4 * v + u}.${X[c]}`).join(", ")});`,
      );
    }
  }
  for (let i = 0; i < tm; i++) {
    L.push(`    let a${i} = textureLoad(At, vec2<u32>(q, ra${i}));`);
    for (let c = 0; c < 4; c++) {
      for (let v = 0; v < nv; v++) L.push(`    acc${i}_${v} += a${i}.${X[c]} * bv${c}_${v};`);
    }
  }
  L.push(`  }`);
  for (let i = 0; i < tm; i++) {
    L.push(`  if (row0 + ${i * wy}u < p.m) {`);
    L.push(`    let base${i} = p.offC + (row0 + ${i * wy}u) * p.ldc;`);
    for (let j = 0; j < tn; j++) {
      const col = `col0 + ${j * wx}u`;
      let v = `p.alpha * acc${i}_${j >> 2}.${X[j & 3]}`;
      if (opts.bias) v += ` + bias[${col}]`;
      const idx = `base${i} + ${col}`;
      L.push(`    if (${col} < p.n) { C[${idx}] = ${opts.accumulate ? `C[${idx}] + ${v}` : v}; }`);
    }
    L.push(`  }`);
  }
  return /* wgsl */ `
struct P { m: u32, n: u32, kq: u32, ldc: u32, offC: u32, alpha: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var At: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var Bt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
${opts.bias ? "@group(0) @binding(4) var<storage, read> bias: array<f32>;" : ""}

@compute @workgroup_size(${wx}, ${wy})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let row0 = wg.y * ${wy * tm}u + l.y;
  let col0 = wg.x * ${wx * tn}u + l.x;
${L.join("\n")}
}
`;
}

/** Cached packing textures per Gpu: role → texture (grown, never shrunk). */
const textures = new WeakMap<Gpu, Map<string, GPUTexture>>();

/** Rounds up to a multiple of `q` (texture sizes are rounded so that few distinct sizes are created). */
function roundUp(v: number, q: number): number {
  return Math.ceil(v / q) * q;
}

/** A cached rgba32float storage texture of at least width × height texels for `role`. */
function packTexture(gpu: Gpu, role: "A" | "B", width: number, height: number): GPUTexture {
  let perGpu = textures.get(gpu);
  if (!perGpu) textures.set(gpu, perGpu = new Map());
  const old = perGpu.get(role);
  if (old && old.width >= width && old.height >= height) return old;
  const max = gpu.limits.maxTextureDimension2D;
  const w = Math.min(max, Math.max(old?.width ?? 0, roundUp(width, 64)));
  const h = Math.min(max, Math.max(old?.height ?? 0, roundUp(height, 256)));
  // The old texture is only dropped, not destroyed: commands recorded but not yet submitted may still use it.
  const tex = gpu.device.createTexture({
    label: `gemm-pack-${role}`,
    size: [w, h],
    format: "rgba32float",
    usage: GPUTextureUsage.STORAGE_BINDING,
  });
  perGpu.set(role, tex);
  return tex;
}

/**
 * Whether an m × n × k product fits this adapter's textures (each packed operand is ceil(k/4) texels wide and
 * m or n texels high).
 */
export function textureGemmFits(gpu: Gpu, m: number, n: number, k: number): boolean {
  const max = gpu.limits.maxTextureDimension2D;
  return k >= 1 && Math.ceil(k / 4) <= max && m <= max && n <= max;
}

/**
 * Records the packing of op(A) and op(B)ᵀ into textures and the texture-fed GEMM (three dispatches, no submit).
 * Arguments are not validated here: `gemm` validates and calls this only when {@link textureGemmFits}.
 *
 * @example
 * ```ts
 * // y[m, n] = x[m, k] · W[n, k]ᵀ (what gemm(rec, { a: x, b: w, c: y, m, n, k, transB: true }) may do on llvmpipe)
 * gemmTexture(rec, {
 *   a: { buf: x, rows: m, off: 0, rs: k, ps: 1 }, b: { buf: w, rows: n, off: 0, rs: k, ps: 1 },
 *   c: y, m, n, k, ldc: n, offC: 0, alpha: 1, accumulate: false,
 * });
 * ```
 */
export function gemmTexture(rec: Recorder, args: TextureGemmArgs): void {
  const gpu = rec.gpu;
  const { m, n, k } = args;
  if (!textureGemmFits(gpu, m, n, k)) {
    throw new Error(
      `gemmTexture: ${m}x${n}x${k} does not fit textures of at most ${gpu.limits.maxTextureDimension2D} texels`,
    );
  }
  const tile = args.tile ?? TEXTURE_GEMM_TILE;
  if (![tile.wx, tile.wy, tile.tm, tile.tn].every((v) => Number.isInteger(v) && v >= 1) || tile.tn % 4) {
    throw new Error(
      `gemmTexture: tile ${JSON.stringify(tile)} needs positive integers and tn a multiple of 4`,
    );
  }
  const kq = Math.ceil(k / 4);
  const views: GPUTextureView[] = [];
  for (const [role, op] of [["A", args.a], ["B", args.b]] as const) {
    const kMajor = role === "B";
    const view = (kMajor ? packTexture(gpu, role, op.rows, kq) : packTexture(gpu, role, kq, op.rows))
      .createView();
    views.push(view);
    rec.dispatch({
      pipeline: gpu.pipeline(`gemm-tex-pack:kMajor${+kMajor}`, packWgsl(kMajor)),
      buffers: [op.buf, view],
      u32: [op.rows, k, op.off, op.rs, op.ps],
      groups: [Math.ceil(kq / 8), Math.ceil(op.rows / 8)],
      label: "gemm-pack",
      shape: `${op.rows}x${k}`,
      flops: 0,
      bytes: 4 * op.rows * k + 16 * op.rows * kq,
    });
  }
  const opts = { bias: !!args.bias, accumulate: args.accumulate };
  const key = `gemm-tex:wx${tile.wx}:wy${tile.wy}:tm${tile.tm}:tn${tile.tn}:bias${+opts.bias}:acc${+opts
    .accumulate}`;
  const pipeline = gpu.pipeline(key, gemmTextureWgsl(tile, opts));
  const buffers: (GPUBuffer | GPUTextureView)[] = [views[0], views[1], args.c];
  if (args.bias) buffers.push(args.bias);
  rec.dispatch({
    pipeline,
    buffers,
    u32: [m, n, kq, args.ldc, args.offC],
    f32: [args.alpha],
    groups: [Math.ceil(n / (tile.wx * tile.tn)), Math.ceil(m / (tile.wy * tile.tm))],
    label: "gemm-tex",
    shape: `${m}x${n}x${k}`,
    flops: 2 * m * n * k + (args.bias ? m * n : 0) + (args.accumulate ? m * n : 0),
    bytes: 16 * kq * (m + n) + 4 * m * n * (args.accumulate ? 2 : 1) + (args.bias ? 4 * n : 0),
  });
}
