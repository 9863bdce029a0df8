/**
 * General matrix multiply on WebGPU: C (=|+=) alpha·op(A)·op(B) (+ bias) with either operand transposed,
 * row strides, element offsets and two-level batching, for any m, n, k (edges that do not fill a tile are
 * handled by clamped loads and guarded stores).
 *
 * Two register-blocked kernels, both streaming op(A) and op(B) straight from storage buffers (no workgroup
 * memory, no barriers — barriers are expensive on CPU adapters such as llvmpipe):
 * - {@link gemmVec4Wgsl}, used when op(A) = A and k, lda, ldb, offsets and batch strides are multiples of 4
 *   (every RoBERTa projection and attention product): operands read as `vec4`, a tm × tn block of C per
 *   invocation. On llvmpipe a buffer load costs about ten vec4 FMAs, so FMAs per load set the speed.
 * - {@link gemmWgsl}, the general fallback (any transposes, strides and alignment), scalar loads, tm × 4 block.
 * - on CPU adapters, products with batch·m·n·k >= 2^12 ({@link TEXTURE_GEMM_MIN_WORK}) go to the
 *   texture-fed kernel of `kernels/gemm_texture.ts` (operands packed into rgba32float textures, whose loads
 *   llvmpipe vectorises; 7–13× the buffer-fed kernels on the RoBERTa projection shapes, 2.5–3.5× on the
 *   batched attention products).
 * - on GPU adapters, the workgroup-memory kernel of `kernels/gemm_shared.ts` (blocks of both operands
 *   staged in workgroup memory between barriers; 1.2–2× the buffer-fed kernel on an H100's large products,
 *   bench/NOTES.md entry 26). `GemmArgs.path` forces any family.
 * Tile sizes are chosen per adapter class (`gpu.isCpu`) and, on CPU adapters, narrower for n <= 16; they are
 * part of the pipeline key, so each variant compiles once. `bench/NOTES.md` has the measurements.
 * @module
 */
import type { Gpu } from "./device.ts";
import { gemmBindingsWgsl } from "./gemm_bindings.ts";
import type { Recorder } from "./recorder.ts";
import {
  fitTileCols,
  fitTileRows,
  gemmTexture,
  storeBlockWgsl,
  stridedRows,
  TEXTURE_GEMM_TILE,
  textureGemmFits,
  type TextureGemmTile,
} from "./gemm_texture.ts";
import type { PackedWeightCache } from "./packed_weights.ts";
import { checkSharedTile, gemmSharedWgsl, SHARED_GEMM_TILE, type SharedGemmTile } from "./gemm_shared.ts";

/** Arguments of {@link gemm}. All counts, strides and offsets are in elements (f32). */
export interface GemmArgs {
  /** Left operand A (stored [m, lda], or [k, lda] when `transA`). */
  a: GPUBuffer;
  /** Right operand B (stored [k, ldb], or [n, ldb] when `transB`). */
  b: GPUBuffer;
  /** Output C (stored [m, ldc]); must not be the same buffer as `a` or `b`. */
  c: GPUBuffer;
  /** Optional bias[n] added to every row of C. */
  bias?: GPUBuffer;
  /** Rows of op(A) and C. */
  m: number;
  /** Columns of op(B) and C. */
  n: number;
  /** Inner dimension. */
  k: number;
  /** false: op(A)[i,p] = A[offA + i*lda + p]; true: op(A)[i,p] = A[offA + p*lda + i]. */
  transA?: boolean;
  /** false: op(B)[p,j] = B[offB + p*ldb + j]; true: op(B)[p,j] = B[offB + j*ldb + p]. */
  transB?: boolean;
  /** Row stride of A as stored (default k, or m when `transA`). */
  lda?: number;
  /** Row stride of B as stored (default n, or k when `transB`). */
  ldb?: number;
  /** Row stride of C (default n). */
  ldc?: number;
  /** Element offset of A (default 0). */
  offA?: number;
  /** Element offset of B (default 0). */
  offB?: number;
  /** Element offset of C (default 0). */
  offC?: number;
  /** Scale of the product (default 1; the bias is not scaled). */
  alpha?: number;
  /** true: C += alpha·op(A)op(B) (+bias); false (default): C = alpha·op(A)op(B) (+bias). */
  accumulate?: boolean;
  /**
   * Two-level batch [outer, inner] (default [1, 1]): batch element z < outer·inner uses the offsets
   * off + floor(z/inner)·stride[0] + (z%inner)·stride[1] for each of A, B and C.
   */
  batch?: [number, number];
  /** Batch strides of A (default [0, 0]). */
  strideA?: [number, number];
  /** Batch strides of B (default [0, 0]). */
  strideB?: [number, number];
  /** Batch strides of C (default [0, 0]). */
  strideC?: [number, number];
  /** Register blocking to use instead of the adapter's default ({@link gemmTileFor}); for tests and tuning. */
  tile?: GemmTile;
  /**
   * Kernel family: `"auto"` (default) takes, when no explicit `tile` is given, the texture-fed kernel
   * ({@link gemmTexture}) on CPU adapters where {@link autoTexturePath} says so and the workgroup-memory kernel
   * (`kernels/gemm_shared.ts`) on GPU adapters; the buffer-fed kernels otherwise. `"buffer"`, `"texture"` and
   * `"shared"` force one (for tests and benchmarks; `"texture"` throws when one batch element exceeds the
   * adapter's texture size).
   */
  path?: "auto" | "buffer" | "texture" | "shared";
  /** Blocking of the workgroup-memory kernel (default `gemmAutoOptions.sharedTile`); for tests and tuning. */
  sharedTile?: SharedGemmTile;
  /**
   * Register blocking of the texture-fed kernel, used as given; for tests and tuning. Default: the tile for the
   * product's shape (`TEXTURE_GEMM_TILE`, {@link NARROW_TEXTURE_TILE} or {@link SMALL_BATCHED_TEXTURE_TILE})
   * with its workgroup height fitted to m by `fitTileRows`.
   */
  textureTile?: TextureGemmTile;
  /**
   * B is a frozen weight: on the texture path its packed texture is kept in this cache and reused by later
   * unbatched products (see `kernels/packed_weights.ts`; the owner calls `forget(b)` after changing B).
   */
  packedB?: PackedWeightCache;
}

/**
 * Smallest batch·m·n·k for which {@link gemm}'s `"auto"` path packs operands into textures on CPU adapters,
 * batched or not. Below it the texture path's two packing dispatches cost more than they save. The buffer-fed
 * kernels loop over k with per-lane scalar loads and give each batch element at least one workgroup, so they
 * are slow far below the sizes where GEMM throughput matters: measured on llvmpipe (bench/NOTES.md entry 24),
 * attention at seq 16 (96 × 16×16×32) 12.2 → 0.56 ms, a pooler product 8×384×384 10.6 → 1.4 ms, the classifier's
 * 8×2×384 2.5 → 0.7 ms. The buffer kernel stays ~0.1 ms faster at 4×4×4 (below the threshold), and is ~0.2 ms
 * faster at 2×384×8 (above it; not worth a rule of its own).
 */
export const TEXTURE_GEMM_MIN_WORK = 2 ** 12;

/** Texture tile for unbatched products at most 16 columns wide (n = r of LoRA): 8 × 4 outputs per invocation. */
export const NARROW_TEXTURE_TILE: TextureGemmTile = { wx: 8, wy: 8, tm: 8, tn: 4 };

/**
 * Whether {@link gemm}'s `"auto"` path takes the texture-fed kernel for a product of this shape on an adapter that
 * `isCpu` (shared with `bench/gemm.ts`, which prints the choice): from {@link TEXTURE_GEMM_MIN_WORK} on, and for
 * batched products only while `gemmAutoOptions.batchedTexture` is on.
 */
export function autoTexturePath(isCpu: boolean, m: number, n: number, k: number, batches = 1): boolean {
  if (!isCpu || batches * m * n * k < TEXTURE_GEMM_MIN_WORK) return false;
  return batches === 1 || gemmAutoOptions.batchedTexture;
}

/**
 * Texture tile for batched products whose per-element output is at most 64 × 64 (attention at short sequence
 * lengths, e.g. 192 × 32×32×32 for MiniLM at batch 16 × seq 32): the default 16×8 outputs per invocation on
 * 8×8 invocations covers 128×64 per workgroup and leaves most lanes idle there. Measured on llvmpipe
 * (bench/NOTES.md entry 18): 1.2–1.6× faster for T = 24…64, same results bit for bit (same k order).
 */
export const SMALL_BATCHED_TEXTURE_TILE: TextureGemmTile = { wx: 8, wy: 8, tm: 4, tn: 4 };

/**
 * Columns per invocation that the default texture tile takes, widest first, where they pad n by at most 1/16
 * ({@link fitTileCols}): 16 for the projections (n = 384, 768, 1024, 1536, 3072, 4096 and attention scores at
 * T = 128), 8 where a 128-column workgroup would pad (attention's context, n = 64). Measured on llvmpipe
 * (bench/NOTES.md entry 40): 16 against 8 columns 1.14–1.23× on roberta-base's 1024-row projections and 1.23×
 * on its training step. 32 columns gained another 6–7 % on the step with Mesa's shader cache warm, but a cold
 * compile takes 8–10 s per 32-column kernel variant (~2 s at 16) and leaves 30–50 MiB resident per variant
 * (entry 44), so they are not in the default list.
 */
export const TEXTURE_TILE_COLS: readonly number[] = [16, 8];

/**
 * Switches of {@link gemm}'s kernel choices, for benchmarks that compare variants inside one program (e.g.
 * `deno task bench step --no-batched-texture`); library code leaves them at their defaults. `batchedTexture`:
 * whether `"auto"` may take the texture-fed kernel for batched products; `copyB`: whether it stages op(B) by a
 * copy and a re-layout kernel where the layout allows (entry 28); `copyA`: whether the texture-fed
 * kernel stages op(A) by `copyBufferToTexture` when its layout allows (bench/NOTES.md entry 17); `fitTileRows`:
 * whether the texture tile's workgroup height is fitted to m ({@link textureTileFor}, entry 36); `tileCols`: the
 * columns per invocation the default texture tile may take, widest first ({@link fitTileCols}, entry 40);
 * `sharedTile`: the workgroup-memory kernel's tile on GPU adapters where the caller names none (entries 26, 45).
 *
 * @example
 * ```ts
 * gemmAutoOptions.batchedTexture = false; // batched products (attention) back on the buffer-fed kernels
 * gemmAutoOptions.copyA = false; // op(A) always packed by the packing kernel, never copied into its texture
 * gemmAutoOptions.fitTileRows = false; // texture tiles keep their 8-invocation-high workgroups whatever m
 * gemmAutoOptions.tileCols = [8]; // the default texture tile keeps 8 columns per invocation whatever n
 * gemmAutoOptions.sharedTile = BLOCKED_SHARED_GEMM_TILE; // GPU adapters: the blocked workgroup-memory kernel
 * ```
 */
export const gemmAutoOptions: {
  batchedTexture: boolean;
  copyA: boolean;
  copyB: boolean;
  fitTileRows: boolean;
  tileCols: number[];
  sharedTile: SharedGemmTile;
} = {
  batchedTexture: true,
  copyA: true,
  copyB: true,
  fitTileRows: true,
  tileCols: [...TEXTURE_TILE_COLS],
  sharedTile: SHARED_GEMM_TILE,
};

/**
 * The texture-fed kernel's tile that {@link gemm} takes for an m × n product of `batches` elements when the caller
 * names none: {@link SMALL_BATCHED_TEXTURE_TILE} for batched products of at most 64 × 64, {@link NARROW_TEXTURE_TILE}
 * for unbatched ones at most 16 wide, `TEXTURE_GEMM_TILE` otherwise, with its workgroup height fitted to m
 * (`fitTileRows`) unless `gemmAutoOptions.fitTileRows` is off.
 */
export function textureTileFor(m: number, n: number, batches: number): TextureGemmTile {
  const base = batches > 1 && m <= 64 && n <= 64
    ? SMALL_BATCHED_TEXTURE_TILE
    : batches === 1 && n <= 16
    ? NARROW_TEXTURE_TILE
    : fitTileCols(TEXTURE_GEMM_TILE, n, gemmAutoOptions.tileCols);
  return gemmAutoOptions.fitTileRows ? fitTileRows(base, m) : base;
}

/** Register-blocking of one GEMM kernel variant. */
export interface GemmTile {
  /** Workgroup width (invocations along n). */
  wx: number;
  /** Workgroup height (invocations along m). */
  wy: number;
  /** Rows of C per invocation. */
  tm: number;
  /** Columns of C per invocation in the vec4 variant (a multiple of 4; default 4; the scalar variant uses 4). */
  tn?: number;
}

/** Tile used on CPU adapters (llvmpipe: 8-wide SIMD over the workgroup, ~32 vec4 registers before spilling). */
export const CPU_GEMM_TILE: GemmTile = { wx: 8, wy: 8, tm: 8, tn: 16 };
/** Tile used on GPU adapters. */
export const GPU_GEMM_TILE: GemmTile = { wx: 16, wy: 16, tm: 4 };

/** Columns of C per invocation (the width of the accumulator vectors). */
const TN = 4;

/**
 * The tile {@link gemm} uses on this adapter for an m × n output. On CPU adapters a narrow output (n <= 16, e.g.
 * the LoRA down-projection with n = r, or a classifier head) gets a tile only 4·wx columns wide so that the
 * SIMD lanes are not idle; tiles are few and fixed, so pipelines stay few.
 */
export function gemmTileFor(gpu: Gpu, n = Infinity): GemmTile {
  if (!gpu.isCpu) return GPU_GEMM_TILE;
  if (n <= 4) return { wx: 1, wy: 64, tm: 4, tn: 4 };
  if (n <= 8) return { wx: 2, wy: 32, tm: 4, tn: 4 };
  if (n <= 16) return { wx: 4, wy: 16, tm: 4, tn: 4 };
  return CPU_GEMM_TILE;
}

/** WGSL of one GEMM variant (exported for inspection and tests). */
export function gemmWgsl(
  tile: GemmTile,
  opts: { transA: boolean; transB: boolean; bias: boolean; accumulate: boolean },
): string {
  const { wx, wy, tm } = tile;
  const bm = wy * tm, bn = wx * TN;
  const lines: string[] = [];
  // Row/column indices of this invocation's block, clamped into range so loads never leave the matrix.
  for (let i = 0; i < tm; i++) lines.push(`  let r${i} = min(row0 + ${i * wy}u, p.m - 1u);`);
  for (let j = 0; j < TN; j++) lines.push(`  let c${j} = min(col0 + ${j * wx}u, p.n - 1u);`);
  // Running element indices into A (one per row) and B (one per column).
  for (let i = 0; i < tm; i++) {
    lines.push(`  var ia${i} = oA + ${opts.transA ? `r${i}` : `r${i} * p.lda`};`);
  }
  for (let j = 0; j < TN; j++) {
    lines.push(`  var ib${j} = oB + ${opts.transB ? `c${j} * p.ldb` : `c${j}`};`);
  }
  for (let i = 0; i < tm; i++) lines.push(`  var acc${i} = vec4<f32>(0.0);`);
  const stepA = opts.transA ? "p.lda" : "1u";
  const stepB = opts.transB ? "1u" : "p.ldb";
  lines.push(`  for (var q = 0u; q < p.k; q++) {`);
  lines.push(`    let bv = vec4<f32>(${[0, 1, 2, 3].map((j) => `B[ib${j}]`).join(", ")});`);
  for (let i = 0; i < tm; i++) lines.push(`    acc${i} += A[ia${i}] * bv;`);
  for (let i = 0; i < tm; i++) lines.push(`    ia${i} += ${stepA};`);
  for (let j = 0; j < TN; j++) lines.push(`    ib${j} += ${stepB};`);
  lines.push(`  }`);
  // Epilogue: guarded stores of alpha·acc (+ bias) (+ C).
  for (let i = 0; i < tm; i++) {
    lines.push(`  if (row0 + ${i * wy}u < p.m) {`);
    lines.push(`    let base${i} = oC + (row0 + ${i * wy}u) * p.ldc;`);
    for (let j = 0; j < TN; j++) {
      const comp = "xyzw"[j];
      let v = `p.alpha * acc${i}.${comp}`;
      if (opts.bias) v += ` + bias[c${j}]`;
      const idx = `base${i} + col0 + ${j * wx}u`;
      const rhs = opts.accumulate ? `C[${idx}] + ${v}` : v;
      lines.push(`    if (col0 + ${j * wx}u < p.n) { C[${idx}] = ${rhs}; }`);
    }
    lines.push(`  }`);
  }
  return /* wgsl */ `${gemmBindingsWgsl(opts.bias)}
@compute @workgroup_size(${wx}, ${wy})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let zo = wg.z / p.inner;
  let zi = wg.z % p.inner;
  let oA = p.offA + zo * p.sA0 + zi * p.sA1;
  let oB = p.offB + zo * p.sB0 + zi * p.sB1;
  let oC = p.offC + zo * p.sC0 + zi * p.sC1;
  let row0 = wg.y * ${bm}u + l.y;
  let col0 = wg.x * ${bn}u + l.x;
${lines.join("\n")}
}
`;
}

/**
 * WGSL of the vec4 variant for op(A) = A (not transposed): A is read as `vec4`s along k, B as `vec4`s along k
 * (transB) or along n (not transB). Each invocation keeps a tm × tn block of C (tm·tn/4 vec4 accumulators), so
 * 4 k-steps cost tm + tn vector loads for tm·tn vec4 FMAs (on llvmpipe a buffer load at a computed address is a
 * per-lane scalar loop costing about ten vec4 FMAs, so FMAs per load is what sets the speed). Requires k, lda,
 * ldb, offA, offB and the A/B batch strides to be multiples of 4 (the launcher checks and otherwise uses
 * {@link gemmWgsl}). Loads past the end of a ragged row land on padding, the next row or (robust access) a
 * clamped address, and only feed outputs that are never stored.
 */
export function gemmVec4Wgsl(
  tile: GemmTile,
  opts: { transB: boolean; bias: boolean; accumulate: boolean },
): string {
  const { wx, wy, tm } = tile;
  const tn = tile.tn ?? TN;
  const nv = tn / 4;
  const bm = wy * tm;
  const L: string[] = [];
  const X = "xyzw";
  for (let i = 0; i < tm; i++) {
    L.push(`  let ia${i} = oA4 + min(row0 + ${i * wy}u, p.m - 1u) * (p.lda / 4u);`);
  }
  // Output columns of this invocation: strided by wx (transB) or one contiguous block of tn (not transB).
  const col = (j: number) => opts.transB ? `col0 + ${j * wx}u` : `col0 + ${j}u`;
  if (opts.transB) {
    L.push(`  let col0 = wg.x * ${wx * tn}u + l.x;`);
    for (let j = 0; j < tn; j++) L.push(`  let ib${j} = oB4 + min(${col(j)}, p.n - 1u) * (p.ldb / 4u);`);
  } else {
    L.push(`  let col0 = (wg.x * ${wx}u + l.x) * ${tn}u;`);
    L.push(`  let ldb4 = p.ldb / 4u;`);
    for (let v = 0; v < nv; v++) L.push(`  let cb${v} = min(col0 / 4u + ${v}u, (p.n - 1u) / 4u);`);
    L.push(`  var ib = oB4;`);
  }
  for (let i = 0; i < tm; i++) for (let v = 0; v < nv; v++) L.push(`  var acc${i}_${v} = vec4<f32>(0.0);`);
  L.push(`  for (var q = 0u; q < p.k / 4u; q++) {`);
  for (let i = 0; i < tm; i++) L.push(`    let a${i} = A[ia${i} + q];`);
  if (opts.transB) {
    for (let j = 0; j < tn; j++) L.push(`    let b${j} = B[ib${j} + q];`);
    for (let c = 0; c < 4; c++) {
      for (let v = 0; v < nv; v++) {
        const bs = [0, 1, 2, 3].map((u) => `b${4 * v + u}.${X[c]}`).join(", ");
        L.push(`    let bv${c}_${v} = vec4<f32>(${bs});`);
      }
    }
  } else {
    for (let c = 0; c < 4; c++) {
      for (let v = 0; v < nv; v++) L.push(`    let bv${c}_${v} = B[ib + ${c}u * ldb4 + cb${v}];`);
    }
    L.push(`    ib += 4u * ldb4;`);
  }
  for (let c = 0; c < 4; c++) {
    for (let i = 0; i < tm; i++) {
      for (let v = 0; v < nv; v++) L.push(`    acc${i}_${v} += a${i}.${X[c]} * bv${c}_${v};`);
    }
  }
  L.push(`  }`);
  L.push(
    ...storeBlockWgsl(tm, tn, stridedRows(wy), col, { bias: !!opts.bias, accumulate: !!opts.accumulate }),
  );
  return /* wgsl */ `${gemmBindingsWgsl(opts.bias, "vec4<f32>")}
@compute @workgroup_size(${wx}, ${wy})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let zo = wg.z / p.inner;
  let zi = wg.z % p.inner;
  let oA4 = (p.offA + zo * p.sA0 + zi * p.sA1) / 4u;
  let oB4 = (p.offB + zo * p.sB0 + zi * p.sB1) / 4u;
  let oC = p.offC + zo * p.sC0 + zi * p.sC1;
  let row0 = wg.y * ${bm}u + l.y;
${L.join("\n")}
}
`;
}

function checkCount(what: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min || v > 0xffffffff) {
    throw new Error(`gemm: ${what} must be an integer >= ${min} (and < 2^32), got ${v}`);
  }
}

function checkBuffer(gpu: Gpu, what: string, buf: GPUBuffer, needed: number): void {
  if (buf.size < needed * 4) {
    throw new Error(
      `gemm: buffer ${what} (${buf.label || "unlabelled"}) has ${
        buf.size / 4
      } f32 elements, needs at least ${needed}`,
    );
  }
  if (buf.size > gpu.limits.maxStorageBufferBindingSize) {
    throw new Error(
      `gemm: buffer ${what} (${buf.label || "unlabelled"}) is ${buf.size} bytes, above this adapter's ` +
        `maxStorageBufferBindingSize ${gpu.limits.maxStorageBufferBindingSize}; split it`,
    );
  }
}

/**
 * Records C (=|+=) alpha·op(A)·op(B) (+ bias) for every batch element: C[offC + i*ldc + j] for i < m, j < n.
 * Only records the dispatch (no submit). Throws a clear error for inconsistent sizes, strides or buffers.
 *
 * @example
 * ```ts
 * // y[tokens, out] = x[tokens, in] · W[out, in]ᵀ + b
 * gemm(rec, { a: x, b: w, bias: b, c: y, m: tokens, n: out, k: inFeatures, transB: true });
 * // attention scores per (batch, head): S = Q Kᵀ / sqrt(d), Q and K inside [batch·seq, hidden]
 * gemm(rec, { a: q, b: kk, c: s, m: seq, n: seq, k: d, transB: true, lda: hidden, ldb: hidden, alpha: 1 / Math.sqrt(d),
 *   batch: [batch, heads], strideA: [seq * hidden, d], strideB: [seq * hidden, d], strideC: [heads * seq * seq, seq * seq] });
 * ```
 */
export function gemm(rec: Recorder, args: GemmArgs): void {
  const gpu = rec.gpu;
  const { m, n, k } = args;
  checkCount("m", m, 0);
  checkCount("n", n, 0);
  checkCount("k", k, 0);
  const transA = args.transA ?? false, transB = args.transB ?? false;
  const lda = args.lda ?? (transA ? m : k);
  const ldb = args.ldb ?? (transB ? k : n);
  const ldc = args.ldc ?? n;
  const offA = args.offA ?? 0, offB = args.offB ?? 0, offC = args.offC ?? 0;
  const [outer, inner] = args.batch ?? [1, 1];
  const sA = args.strideA ?? [0, 0], sB = args.strideB ?? [0, 0], sC = args.strideC ?? [0, 0];
  const alpha = args.alpha ?? 1;
  for (
    const [what, v] of [["lda", lda], ["ldb", ldb], ["ldc", ldc], ["offA", offA], ["offB", offB]] as const
  ) {
    checkCount(what, v, 0);
  }
  checkCount("offC", offC, 0);
  checkCount("batch[0]", outer, 1);
  checkCount("batch[1]", inner, 1);
  for (const [what, s] of [["strideA", sA], ["strideB", sB], ["strideC", sC]] as const) {
    if (!Array.isArray(s) || s.length !== 2) throw new Error(`gemm: ${what} must be [outer, inner] strides`);
    checkCount(`${what}[0]`, s[0], 0);
    checkCount(`${what}[1]`, s[1], 0);
  }
  if (!Number.isFinite(alpha)) throw new Error(`gemm: alpha must be finite, got ${alpha}`);
  if (lda < (transA ? m : k)) throw new Error(`gemm: lda ${lda} < ${transA ? "m" : "k"} ${transA ? m : k}`);
  if (ldb < (transB ? k : n)) throw new Error(`gemm: ldb ${ldb} < ${transB ? "k" : "n"} ${transB ? k : n}`);
  if (ldc < n) throw new Error(`gemm: ldc ${ldc} < n ${n}`);
  if (args.c === args.a || args.c === args.b) {
    throw new Error(
      "gemm: output c must be a different buffer from a and b (WebGPU forbids writable aliasing)",
    );
  }
  if (m === 0 || n === 0) return;
  const last = (off: number, s: readonly number[]) => off + (outer - 1) * s[0] + (inner - 1) * s[1];
  if (k > 0) {
    checkBuffer(gpu, "a", args.a, last(offA, sA) + (transA ? (k - 1) * lda + m : (m - 1) * lda + k));
    checkBuffer(gpu, "b", args.b, last(offB, sB) + (transB ? (n - 1) * ldb + k : (k - 1) * ldb + n));
  }
  checkBuffer(gpu, "c", args.c, last(offC, sC) + (m - 1) * ldc + n);
  if (args.bias) checkBuffer(gpu, "bias", args.bias, n);

  const path = args.path ?? "auto";
  if (path !== "auto" && path !== "buffer" && path !== "texture" && path !== "shared") {
    throw new Error(
      `gemm: path must be "auto", "buffer", "texture" or "shared", got ${JSON.stringify(path)}`,
    );
  }
  const textureOk = textureGemmFits(gpu, m, n, k);
  if (path === "texture" && !textureOk) {
    throw new Error(
      `gemm: path "texture" needs 1 <= k and ceil(k/4), m, n <= ` +
        `${gpu.limits.maxTextureDimension2D} (got ${m}x${n}x${k}, batch [${outer}, ${inner}])`,
    );
  }
  if (
    path === "texture" ||
    (path === "auto" && textureOk && !args.tile && autoTexturePath(gpu.isCpu, m, n, k, outer * inner))
  ) {
    gemmTexture(rec, {
      a: transA
        ? { buf: args.a, rows: m, off: offA, rs: 1, ps: lda, bs: sA }
        : { buf: args.a, rows: m, off: offA, rs: lda, ps: 1, bs: sA },
      b: transB
        ? { buf: args.b, rows: n, off: offB, rs: ldb, ps: 1, bs: sB }
        : { buf: args.b, rows: n, off: offB, rs: 1, ps: ldb, bs: sB },
      batch: [outer, inner],
      strideC: sC,
      copyA: gemmAutoOptions.copyA,
      copyB: gemmAutoOptions.copyB,
      packedB: args.packedB,
      c: args.c,
      bias: args.bias,
      m,
      n,
      k,
      ldc,
      offC,
      alpha,
      accumulate: !!args.accumulate,
      tile: args.textureTile ?? textureTileFor(m, n, outer * inner),
    });
    return;
  }
  const batches = outer * inner;
  const buffers = [args.a, args.b, args.c];
  if (args.bias) buffers.push(args.bias);
  const u32 = [m, n, k, lda, ldb, ldc, offA, offB, offC, inner, sA[0], sA[1], sB[0], sB[1], sC[0], sC[1]];
  const shape = `${m}x${n}x${k}${transA ? "tA" : ""}${transB ? "tB" : ""}${batches > 1 ? `b${batches}` : ""}`;
  const flops = batches * (2 * m * n * k + (args.bias ? m * n : 0) + (args.accumulate ? m * n : 0));
  const bytes = 4 * batches * (m * k + k * n + m * n * (args.accumulate ? 2 : 1)) + (args.bias ? 4 * n : 0);
  const opts = { transA, transB, bias: !!args.bias, accumulate: !!args.accumulate };
  if (path === "shared" || (path === "auto" && !gpu.isCpu && !args.tile)) {
    const st = args.sharedTile ?? gemmAutoOptions.sharedTile;
    checkSharedTile(st, gpu.limits);
    const key = `gemm-shared:wx${st.wx}:wy${st.wy}:tm${st.tm}:tn${st.tn}:bk${st.bk}:blk${+!!st.blocked}` +
      `:tA${+transA}:tB${+transB}` +
      `:bias${+opts.bias}:acc${+opts.accumulate}`;
    rec.dispatch({
      pipeline: gpu.pipeline(key, () => gemmSharedWgsl(st, opts)),
      buffers,
      u32,
      f32: [alpha],
      groups: [Math.ceil(n / (st.wx * st.tn)), Math.ceil(m / (st.wy * st.tm)), batches],
      label: "gemm",
      shape,
      flops,
      bytes,
    });
    return;
  }
  const tile = args.tile ?? gemmTileFor(gpu, n);
  const tn0 = tile.tn ?? TN;
  if (![tile.wx, tile.wy, tile.tm, tn0].every((v) => Number.isInteger(v) && v >= 1) || tn0 % 4 !== 0) {
    throw new Error(`gemm: tile ${JSON.stringify(tile)} needs positive integers and tn a multiple of 4`);
  }
  if (tile.wx * tile.wy > gpu.limits.maxComputeInvocationsPerWorkgroup) {
    throw new Error(`gemm: tile ${tile.wx}x${tile.wy} exceeds maxComputeInvocationsPerWorkgroup`);
  }
  // The vec4 variant needs op(A) = A and every A/B address that starts a vec4 to be 4-aligned.
  // Without transB the last vec4 of B's last row reaches column roundUp4(n) - 1: B must hold it, or a robust
  // (clamped) load would feed wrong values into real columns.
  const vec4 = !transA && [k, lda, ldb, offA, offB, ...sA, ...sB].every((v) => v % 4 === 0) &&
    (transB || k === 0 || args.b.size >= 4 * (last(offB, sB) + (k - 1) * ldb + Math.ceil(n / 4) * 4));
  const tn = vec4 ? tile.tn ?? TN : TN;
  const key =
    `gemm${vec4 ? "-vec4" : ""}:wx${tile.wx}:wy${tile.wy}:tm${tile.tm}:tn${tn}:tA${+transA}:tB${+transB}` +
    `:bias${+opts.bias}:acc${+opts.accumulate}`;
  const pipeline = gpu.pipeline(key, () => vec4 ? gemmVec4Wgsl(tile, opts) : gemmWgsl(tile, opts));
  rec.dispatch({
    pipeline,
    buffers,
    u32,
    f32: [alpha],
    groups: [Math.ceil(n / (tile.wx * tn)), Math.ceil(m / (tile.wy * tile.tm)), batches],
    label: "gemm",
    shape,
    flops,
    bytes,
  });
}
