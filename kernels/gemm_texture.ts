/**
 * Texture-fed GEMM for CPU adapters (llvmpipe): C (=|+=) alpha·op(A)·op(B) (+ bias), unbatched or with
 * `gemm`'s two-level batch. On llvmpipe every storage-buffer load at a computed address is a per-lane scalar
 * loop with a bounds check, while `textureLoad` from a read-only `texture_storage_2d<rgba32float, read>` is
 * vectorised. So the operands are first staged into two rgba32float textures:
 *
 * - `At`, height m, width ceil(k/4): texel (q, i) = op(A)[i, 4q..4q+3];
 * - `Bt`, width n, height ceil(k/4): texel (j, q) = op(B)[4q..4q+3, j];
 *
 * with the k-tail of the last texel zeroed, so the inner loop reads one vec4 along k per row of A and per column
 * of B. `Bt` is stored k-major so that the 8 SIMD lanes of llvmpipe (consecutive columns of C) read adjacent
 * texels, while all lanes read the same `At` texel (bench/NOTES.md, entry 12: ~20 % faster than n-major `Bt`).
 * `Bt` is written by a small packing kernel (scalar loads, `textureStore`); `At` too, unless op(A)'s rows are
 * contiguous and aligned ({@link canCopyOperand}: every RoBERTa activation and Q, P, dS of the attention
 * products), in which case `At` has the buffer's own layout and is filled by `copyBufferToTexture` (memcpy
 * speed; entry 17).
 *
 * A batched product (e.g. the attention products Q·Kᵀ and P·V per batch element and head) stages every batch
 * element z of a chunk as a block: `At` rows z·m .. z·m+m-1 and `Bt` rows z·ceil(k/4) .., so one packing
 * dispatch (or one copy per element) per operand and one GEMM dispatch (third grid dimension = batch element)
 * serve the whole chunk; a chunk holds as many batch elements as fit in `maxTextureDimension2D` (all 96 of
 * roberta-base's 8 × 12 heads at seq 128), larger batches take several chunks (entry 14).
 *
 * Then a register-blocked kernel (each invocation a tm × tn block of C in scalar accumulators, rows and
 * columns strided by the workgroup size; no workgroup memory, no barriers) writes C with alpha, bias and
 * accumulate. Staging is O(mk + nk) against the product's O(mnk). The textures are cached per Gpu and role and
 * only grow; reusing one texture for consecutive products in one command buffer is safe because WebGPU orders
 * the passes and copies of a command encoder that write and read the same resource.
 *
 * `kernels/gemm.ts` decides when to take this path; `bench/NOTES.md` has the measurements.
 * @module
 */
import type { Gpu } from "./device.ts";
import type { Recorder } from "./recorder.ts";
import { type CachedTexture, cachedTexture } from "./texture_stage.ts";
import type { PackedWeightCache } from "./packed_weights.ts";

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

/** Share of m's rows that {@link fitTileRows} lets a workgroup row waste before it tries a shorter workgroup. */
export const TILE_ROW_WASTE = 1 / 16;

/**
 * `tile` with its workgroup height fitted to m rows of C: the tallest of wy, wy/2, wy/4, …, 1 whose workgroups
 * (wy·tm rows each) pad m by at most {@link TILE_ROW_WASTE}, or 1 (the least padding) when none does. Rows past
 * m are computed on a clamped row and thrown away, so the default 128-row workgroup spent 23 % of a 208-row
 * product (MiniLM at batch 4 × 52 tokens) on padding. Each output's sum runs over k in the same order whatever
 * the tile, so the results are the same bit for bit; only the work changes. Tall workgroups stay where they
 * fit, since their invocations share op(B)'s texels in cache (bench/NOTES.md entry 36: on llvmpipe 1.19× on
 * MiniLM's ragged shapes, while 8×1 everywhere lost ~6 % on roberta-base's 1024-row ones).
 *
 * @example
 * ```ts
 * fitTileRows(TEXTURE_GEMM_TILE, 1024); // { wx: 8, wy: 8, tm: 16, tn: 8 }: 8 workgroup rows of 128, no padding
 * fitTileRows(TEXTURE_GEMM_TILE, 208); // { wx: 8, wy: 1, tm: 16, tn: 8 }: 13 of 16 rows instead of 2 of 128
 * ```
 */
export function fitTileRows(tile: TextureGemmTile, m: number): TextureGemmTile {
  const padded = (wy: number) => Math.ceil(m / (wy * tile.tm)) * wy * tile.tm;
  for (let wy = tile.wy; wy > 1; wy = Math.floor(wy / 2)) {
    if (padded(wy) <= m * (1 + TILE_ROW_WASTE)) return wy === tile.wy ? tile : { ...tile, wy };
  }
  return tile.wy === 1 ? tile : { ...tile, wy: 1 };
}

/**
 * `tile` with the widest of `cols` columns per invocation (widest first, each a multiple of 4) whose workgroups
 * (wx·tn columns each) pad n by at most {@link TILE_ROW_WASTE}, or the one with the least padding when none does.
 * A wider block loads each op(A) texel once for more columns: on llvmpipe the texel gathers, not the
 * multiply-adds, bound the kernel, and the accumulators it spills stay in L1 (bench/NOTES.md entry 40: 16 columns
 * against 8 gave 1.14–1.23× on roberta-base's projections). Narrow outputs that a wide workgroup would pad (n =
 * 64: attention's context at d = 64) keep the narrower block. As with {@link fitTileRows}, each output's sum runs
 * over k in the same order whatever the tile, so the results are the same bit for bit.
 *
 * @example
 * ```ts
 * fitTileCols(TEXTURE_GEMM_TILE, 768, [16, 8]); // { wx: 8, wy: 8, tm: 16, tn: 16 }: 6 workgroups of 128 columns
 * fitTileCols(TEXTURE_GEMM_TILE, 64, [16, 8]); // { wx: 8, wy: 8, tm: 16, tn: 8 }: one of 64, not half of 128
 * ```
 */
export function fitTileCols(tile: TextureGemmTile, n: number, cols: readonly number[]): TextureGemmTile {
  if (!cols.length || cols.some((tn) => !Number.isInteger(tn) || tn < 4 || tn % 4)) {
    throw new Error(`fitTileCols: cols ${JSON.stringify(cols)} must be positive multiples of 4`);
  }
  const padded = (tn: number) => Math.ceil(n / (tile.wx * tn)) * tile.wx * tn;
  let best = cols[0];
  for (const tn of cols) {
    if (padded(tn) <= n * (1 + TILE_ROW_WASTE)) {
      best = tn;
      break;
    }
    if (padded(tn) < padded(best)) best = tn;
  }
  return best === tile.tn ? tile : { ...tile, tn: best };
}

/**
 * A strided view of one row-major operand: element (r, p) of the R × K matrix of batch element z is at
 * off + floor(z/inner)·bs[0] + (z%inner)·bs[1] + r·rs + p·ps.
 */
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
  /** Batch strides [outer, inner] (default [0, 0]). */
  bs?: [number, number];
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
  /** Two-level batch [outer, inner] (default [1, 1]), as in `GemmArgs.batch`. */
  batch?: [number, number];
  /** Batch strides of C (default [0, 0]). */
  strideC?: [number, number];
  /** Stage op(A) by `copyBufferToTexture` when {@link canCopyOperand} allows (default true; false for A/B tests). */
  copyA?: boolean;
  /**
   * Stage op(B) by `copyBufferToTexture` and a re-layout kernel when {@link copyModeB} allows (default true; false
   * for A/B tests).
   */
  copyB?: boolean;
  /** op(B) is a frozen weight: keep its packed texture in this cache (unbatched products only). */
  packedB?: PackedWeightCache;
}

/**
 * WGSL of the packing kernel: one invocation per texel, 4 guarded loads along k, zero past k. The texel of row r
 * and k-group q of the chunk's batch element zl (global element z0 + zl, the grid's z) goes to (q, zl·rows + r)
 * (`kMajor` false, used for A) or (r, zl·ceil(k/4) + q) (`kMajor` true, used for B).
 */
export function packWgsl(kMajor: boolean): string {
  return /* wgsl */ `
struct P { rows: u32, k: u32, off: u32, rs: u32, ps: u32, z0: u32, inner: u32, s0: u32, s1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let q = g.x;
  let r = g.y;
  let kq = (p.k + 3u) / 4u;
  if (r >= p.rows || q >= kq) { return; }
  let z = p.z0 + g.z;
  let base = p.off + (z / p.inner) * p.s0 + (z % p.inner) * p.s1 + r * p.rs + q * 4u * p.ps;
  var v = vec4<f32>(0.0);
  for (var u = 0u; u < 4u; u++) {
    if (q * 4u + u < p.k) { v[u] = src[base + u * p.ps]; }
  }
  textureStore(dst, ${kMajor ? "vec2<u32>(r, g.z * kq + q)" : "vec2<u32>(q, g.z * p.rows + r)"}, v);
}
`;
}

/**
 * WGSL lines that write a register block of C (shared by the buffer-fed, texture-fed and workgroup-memory GEMM
 * generators): row `row(i)` of the tm rows and column `col(j)` of the tn columns get `alpha · acc{i}_{j/4}.{xyzw}`,
 * plus `bias[col]`, added to C when accumulating, skipping rows ≥ p.m and columns ≥ p.n. Expects `oC`, what the
 * row and column expressions use, the accumulators and the parameters `p.m`, `p.n`, `p.ldc`, `p.alpha` in the
 * kernel. {@link stridedRows} gives the rows of the kernels that interleave their rows by the workgroup height.
 */
export function storeBlockWgsl(
  tm: number,
  tn: number,
  row: (i: number) => string,
  col: (j: number) => string,
  opts: { bias: boolean; accumulate: boolean },
): string[] {
  const X = ["x", "y", "z", "w"];
  const L: string[] = [];
  for (let i = 0; i < tm; i++) {
    L.push(`  if (${row(i)} < p.m) {`);
    L.push(`    let base${i} = oC + (${row(i)}) * p.ldc;`);
    for (let j = 0; j < tn; j++) {
      let v = `p.alpha * acc${i}_${j >> 2}.${X[j & 3]}`;
      if (opts.bias) v += ` + bias[${col(j)}]`;
      const idx = `base${i} + ${col(j)}`;
      L.push(`    if (${col(j)} < p.n) { C[${idx}] = ${opts.accumulate ? `C[${idx}] + ${v}` : v}; }`);
    }
    L.push(`  }`);
  }
  return L;
}

/**
 * Row i of an invocation's block when its tm rows are interleaved by the workgroup height: `row0 + i·wy` (the
 * row expression of {@link storeBlockWgsl} for the texture-fed, buffer-fed and strided workgroup-memory kernels).
 *
 * @example
 * ```ts
 * stridedRows(8)(2); // "row0 + 16u"
 * ```
 */
export function stridedRows(wy: number): (i: number) => string {
  return (i) => `row0 + ${i * wy}u`;
}

/** WGSL of the texture-fed GEMM for one tile and epilogue (exported for inspection and tests). */
export function gemmTextureWgsl(tile: TextureGemmTile, opts: { bias: boolean; accumulate: boolean }): string {
  const { wx, wy, tm, tn } = tile;
  const nv = tn / 4;
  const X = "xyzw";
  const L: string[] = [];
  // Rows of At and the first row of Bt of this batch element (the grid's z within the chunk).
  for (let i = 0; i < tm; i++) L.push(`  let ra${i} = wg.z * p.m + min(row0 + ${i * wy}u, p.m - 1u);`);
  L.push(`  let qb = wg.z * p.kq;`);
  for (let j = 0; j < tn; j++) L.push(`  let cb${j} = min(col0 + ${j * wx}u, p.n - 1u);`);
  for (let i = 0; i < tm; i++) for (let v = 0; v < nv; v++) L.push(`  var acc${i}_${v} = vec4<f32>(0.0);`);
  L.push(`  for (var q = 0u; q < p.kq; q++) {`);
  for (let j = 0; j < tn; j++) L.push(`    let b${j} = textureLoad(Bt, vec2<u32>(cb${j}, qb + q));`);
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
  L.push(...storeBlockWgsl(tm, tn, stridedRows(wy), (j) => `col0 + ${j * wx}u`, opts));
  return /* wgsl */ `
struct P { m: u32, n: u32, kq: u32, ldc: u32, offC: u32, z0: u32, inner: u32, sC0: u32, sC1: u32, alpha: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var At: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var Bt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
${opts.bias ? "@group(0) @binding(4) var<storage, read> bias: array<f32>;" : ""}

@compute @workgroup_size(${wx}, ${wy})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let row0 = wg.y * ${wy * tm}u + l.y;
  let col0 = wg.x * ${wx * tn}u + l.x;
  let z = p.z0 + wg.z;
  let oC = p.offC + (z / p.inner) * p.sC0 + (z % p.inner) * p.sC1;
${L.join("\n")}
}
`;
}

/** Rounds up to a multiple of `q` (texture sizes are rounded so that few distinct sizes are created). */
function roundUp(v: number, q: number): number {
  return Math.ceil(v / q) * q;
}

/**
 * The cached packing texture of `role` (see {@link cachedTexture}; grown, never shrunk): at least width × height
 * texels. Batched products use their own roles ("Az", "Bz", …: narrow and tall) so that they do not grow the
 * unbatched ones. Unbatched roles keep one texture per (rounded) width, since their widths come from the model's
 * dimensions (k/4 for op(A); n, or k/4 and n/4 for op(B)'s staging): a roberta-base layer's weights need op(B)
 * textures of 3072 × 192 and 768 × 768 texels, and one texture grown to their union (3072 × 768) held 4× the
 * larger one's memory (bench/NOTES.md entry 46). Batched roles grow to the union instead: their widths follow
 * the sequence length, which changes from batch to batch.
 */
function packTexture(
  gpu: Gpu,
  role: "A" | "B" | "Az" | "Bz" | "Bs" | "Bc" | "Bsz" | "Bcz",
  width: number,
  height: number,
): CachedTexture {
  const max = gpu.limits.maxTextureDimension2D;
  // Batched `At` and staging textures are narrow (16 or 32 texels for attention): round their width finely.
  const w = Math.min(max, roundUp(width, role.endsWith("z") && role !== "Bz" ? 8 : 64));
  const perWidth = !role.endsWith("z");
  return cachedTexture(
    gpu,
    perWidth ? `gemm-pack-${role}-w${w}` : `gemm-pack-${role}`,
    width,
    height,
    (old) => [
      perWidth ? w : Math.max(old?.width ?? 0, w),
      Math.min(max, Math.max(old?.height ?? 0, roundUp(height, 256))),
    ],
  );
}

/**
 * Whether an m × n × k product fits this adapter's textures (each packed operand is ceil(k/4) texels wide and
 * m or n texels high). Batched products always fit when one batch element does: they are split into chunks
 * ({@link textureGemmChunk}).
 */
export function textureGemmFits(gpu: Gpu, m: number, n: number, k: number): boolean {
  const max = gpu.limits.maxTextureDimension2D;
  return k >= 1 && Math.ceil(k / 4) <= max && m <= max && n <= max;
}

/**
 * Whether op(A) can be staged into `At` by `copyBufferToTexture` instead of the packing kernel: its rows are
 * contiguous along k (ps = 1) with k a multiple of 4 (whole texels), every batch element starts 16-byte aligned
 * and the row stride is a multiple of 256 bytes (WebGPU's `bytesPerRow` alignment). True for the RoBERTa
 * projections' activations (row stride 768 or 3072 floats) and for Q, P and dS of the attention products.
 */
export function canCopyOperand(op: PackedOperand, k: number, batches = 1): boolean {
  const bs = op.bs ?? [0, 0];
  const aligned = [op.off, ...(batches > 1 ? bs : [])].every((v) => v % 4 === 0);
  return op.ps === 1 && k % 4 === 0 && (op.rs * 4) % 256 === 0 && aligned;
}

/**
 * WGSL of the re-layout kernels that turn op(B) copied into a staging texture into `Bt` (texel (j, z·kq + q) =
 * op(B)[4q..4q+3, j] of batch element z, zero past k):
 * - `"rows"`: the staging texture holds op(B)'s rows j as copied, texel (q, z·rows + j) (rows contiguous along
 *   k); one invocation moves one texel.
 * - `"cols"`: it holds op(B)'s k rows of n = `rows` floats as copied, texel (c, z·k + p) = op(B)[p, 4c..4c+3]
 *   (contiguous along n, n a multiple of 4); one invocation transposes a 4 × 4 block.
 */
export function relayoutWgsl(mode: "rows" | "cols"): string {
  const body = mode === "rows"
    ? `
  let j = g.x;
  let q = g.y;
  if (j >= p.rows || q >= p.kq) { return; }
  textureStore(D, vec2<u32>(j, g.z * p.kq + q), textureLoad(S, vec2<u32>(q, g.z * p.rows + j)));`
    : `
  let c = g.x;
  let q = g.y;
  if (c * 4u >= p.rows || q >= p.kq) { return; }
  var t: array<vec4<f32>, 4>;
  for (var u = 0u; u < 4u; u++) {
    if (q * 4u + u < p.k) { t[u] = textureLoad(S, vec2<u32>(c, g.z * p.k + q * 4u + u)); }
  }
  for (var v = 0u; v < 4u; v++) {
    textureStore(D, vec2<u32>(c * 4u + v, g.z * p.kq + q), vec4<f32>(t[0][v], t[1][v], t[2][v], t[3][v]));
  }`;
  return /* wgsl */ `
struct P { rows: u32, k: u32, kq: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var S: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var D: texture_storage_2d<rgba32float, write>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {${body}
}
`;
}

/**
 * How op(B) can reach `Bt` by `copyBufferToTexture` (memcpy speed on llvmpipe) and a re-layout kernel
 * ({@link relayoutWgsl}) instead of the packing kernel's per-lane scalar loads (bench/NOTES.md entry 28):
 * `"rows"` when its rows are contiguous along k as {@link canCopyOperand} requires (y = x·Wᵀ, K in Q·Kᵀ),
 * `"cols"` when it is contiguous along n (rs = 1: dX = dY·W, V in P·V) with n a multiple of 4, a row stride of
 * a multiple of 256 bytes and 16-byte aligned batch elements; null otherwise, or when `nz` batch elements of
 * the staging texture would pass the adapter's texture height.
 */
export function copyModeB(
  gpu: Gpu,
  op: PackedOperand,
  k: number,
  nz: number,
  batches = 1,
): "rows" | "cols" | null {
  const max = gpu.limits.maxTextureDimension2D;
  if (canCopyOperand(op, k, batches)) return nz * op.rows <= max ? "rows" : null;
  const bs = op.bs ?? [0, 0];
  const aligned = [op.off, ...(batches > 1 ? bs : [])].every((v) => v % 4 === 0);
  const cols = op.rs === 1 && op.rows % 4 === 0 && (op.ps * 4) % 256 === 0 && aligned;
  return cols && nz * k <= max ? "cols" : null;
}

/**
 * Batch elements per chunk of a batched m × n × k product: as many as fit in one packed texture (m rows of `At`
 * and ceil(k/4) rows of `Bt` per element, at most `maxTextureDimension2D` rows) and in the grid's z dimension.
 */
export function textureGemmChunk(gpu: Gpu, m: number, k: number, batches: number): number {
  const max = gpu.limits.maxTextureDimension2D;
  const fit = Math.min(Math.floor(max / m), Math.floor(max / Math.ceil(k / 4)));
  return Math.max(1, Math.min(batches, fit, gpu.limits.maxComputeWorkgroupsPerDimension));
}

/**
 * Records the staging of op(A) and op(B)ᵀ into textures and the texture-fed GEMM, per chunk of batch elements
 * ({@link textureGemmChunk}): three dispatches, or two and one `copyBufferToTexture` per batch element when
 * op(A) can be copied ({@link canCopyOperand}). No submit.
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
  const [outer, inner] = args.batch ?? [1, 1];
  const batches = outer * inner;
  const sC = args.strideC ?? [0, 0];
  const chunk = textureGemmChunk(gpu, m, k, batches);
  const batched = batches > 1;
  const opts = { bias: !!args.bias, accumulate: args.accumulate };
  const key = `gemm-tex:wx${tile.wx}:wy${tile.wy}:tm${tile.tm}:tn${tile.tn}:bias${+opts.bias}:acc${+opts
    .accumulate}`;
  const pipeline = gpu.pipeline(key, () => gemmTextureWgsl(tile, opts));
  // The textures hold one chunk; later chunks overwrite them after the previous chunk's GEMM has read them
  // (WebGPU orders the passes of one command buffer that write and read the same texture).
  const { tex: texA, view: viewA } = packTexture(gpu, batched ? "Az" : "A", kq, chunk * args.a.rows);
  const packed = !batched && args.packedB ? args.packedB.lookup(args.b, k) : null;
  const viewB = packed?.view ?? packTexture(gpu, batched ? "Bz" : "B", args.b.rows, chunk * kq).view;
  const views = [viewA, viewB];
  const copyA = (args.copyA ?? true) && canCopyOperand(args.a, k, batches);
  const modeB = (args.copyB ?? true) ? copyModeB(gpu, args.b, k, chunk, batches) : null;
  for (let z0 = 0; z0 < batches; z0 += chunk) {
    const nz = Math.min(chunk, batches - z0);
    [args.a, args.b].forEach((op, i) => {
      const kMajor = i === 1;
      const bs = op.bs ?? [0, 0];
      if (!kMajor && copyA) {
        // Rows of op(A) are contiguous, 16-byte aligned and 256-byte strided: the At layout is the buffer's
        // own, so a copy (memcpy speed on llvmpipe) replaces the packing kernel's per-lane scalar loads.
        for (let zl = 0; zl < nz; zl++) {
          const z = z0 + zl;
          const off = op.off + Math.floor(z / inner) * bs[0] + (z % inner) * bs[1];
          rec.copyBufferToTexture(
            { buffer: op.buf, offset: 4 * off, bytesPerRow: 4 * op.rs, rowsPerImage: op.rows },
            { texture: texA, origin: [0, zl * op.rows, 0] },
            [kq, op.rows, 1],
          );
        }
        return;
      }
      if (kMajor && packed && !packed.fresh) return; // a frozen weight packed by an earlier product
      if (kMajor && modeB) {
        // Copy op(B) as stored into a staging texture, then re-layout it into Bt (entry 28 of bench/NOTES.md).
        // Per batch element: rows × kq texels (rows mode) or k × rows/4 (cols mode), as stored.
        const [w, h] = modeB === "rows" ? [kq, op.rows] : [op.rows / 4, k];
        // Separate staging for batched products (narrow, tall) and weights (wide), so that neither grows to the
        // other's shape.
        const role = batched ? (modeB === "rows" ? "Bsz" : "Bcz") : (modeB === "rows" ? "Bs" : "Bc");
        const { tex: texS, view: viewS } = packTexture(gpu, role, w, chunk * h);
        for (let zl = 0; zl < nz; zl++) {
          const z = z0 + zl;
          const off = op.off + Math.floor(z / inner) * bs[0] + (z % inner) * bs[1];
          rec.copyBufferToTexture(
            { buffer: op.buf, offset: 4 * off, bytesPerRow: 4 * (modeB === "rows" ? op.rs : op.ps) },
            { texture: texS, origin: [0, zl * h, 0] },
            [w, h, 1],
          );
        }
        rec.dispatch({
          pipeline: gpu.pipeline(`gemm-tex-relayout:${modeB}`, () => relayoutWgsl(modeB)),
          buffers: [viewS, views[1]],
          u32: [op.rows, k, kq],
          groups: [Math.ceil((modeB === "rows" ? op.rows : op.rows / 4) / 8), Math.ceil(kq / 8), nz],
          label: "gemm-relayout",
          shape: `${op.rows}x${k}${batched ? `b${nz}` : ""}`,
          flops: 0,
          bytes: nz * 32 * op.rows * kq,
        });
        return;
      }
      rec.dispatch({
        pipeline: gpu.pipeline(`gemm-tex-pack:kMajor${+kMajor}`, () => packWgsl(kMajor)),
        buffers: [op.buf, views[i]],
        u32: [op.rows, k, op.off, op.rs, op.ps, z0, inner, bs[0], bs[1]],
        groups: [Math.ceil(kq / 8), Math.ceil(op.rows / 8), nz],
        label: "gemm-pack",
        shape: `${op.rows}x${k}${batched ? `b${nz}` : ""}`,
        flops: 0,
        bytes: nz * (4 * op.rows * k + 16 * op.rows * kq),
      });
    });
    const buffers: (GPUBuffer | GPUTextureView)[] = [views[0], views[1], args.c];
    if (args.bias) buffers.push(args.bias);
    rec.dispatch({
      pipeline,
      buffers,
      u32: [m, n, kq, args.ldc, args.offC, z0, inner, sC[0], sC[1]],
      f32: [args.alpha],
      groups: [Math.ceil(n / (tile.wx * tile.tn)), Math.ceil(m / (tile.wy * tile.tm)), nz],
      label: "gemm-tex",
      shape: `${m}x${n}x${k}${batched ? `b${nz}` : ""}`,
      flops: nz * (2 * m * n * k + (args.bias ? m * n : 0) + (args.accumulate ? m * n : 0)),
      bytes: nz * (16 * kq * (m + n) + 4 * m * n * (args.accumulate ? 2 : 1)) + (args.bias ? 4 * n : 0),
    });
  }
}
