/**
 * The workgroup-memory GEMM for GPU adapters: C (=|+=) alpha·op(A)·op(B) (+ bias), the same arguments, uniform
 * layout and bindings as the buffer-fed kernels of `kernels/gemm.ts`, for any transposes, strides, offsets,
 * alignment and two-level batching.
 *
 * Each workgroup computes a BM × BN block of C (BM = wy·tm, BN = wx·tn). Per step of `bk` along k, its
 * invocations load a BM × bk block of op(A) and a bk × BN block of op(B) into workgroup memory (coalesced: the
 * loads walk the stored layout's contiguous dimension; outside the matrix they load 0), meet at a barrier, and
 * each accumulates its tm × tn outputs (rows `row0 + i·wy`, columns `col0 + j·wx`, so that neighbouring
 * invocations read neighbouring words of workgroup memory and write neighbouring words of C) from registers.
 * Every loaded value is reused BM or BN times from workgroup memory instead of being fetched again from L1/L2,
 * which is what the buffer-fed kernels (written for llvmpipe, where barriers are expensive) leave on the table on
 * a real GPU: on an H100 they reached 5–8 % of the fp32 peak (bench/NOTES.md entry 25).
 *
 * Not used on CPU adapters: llvmpipe runs a workgroup's invocations as loops split at every barrier.
 * @module
 */
import { storeBlockWgsl, stridedRows } from "./gemm_texture.ts";
import { gemmBindingsWgsl } from "./gemm_bindings.ts";

/** Blocking of the workgroup-memory GEMM. */
export interface SharedGemmTile {
  /** Workgroup width (invocations along n). */
  wx: number;
  /** Workgroup height (invocations along m). */
  wy: number;
  /** Rows of C per invocation. */
  tm: number;
  /** Columns of C per invocation (a multiple of 4: vec4 accumulators). */
  tn: number;
  /** Depth of the k-step staged in workgroup memory. */
  bk: number;
  /**
   * The blocked variant ({@link gemmSharedBlockedWgsl}): each invocation's rows and columns in runs of 4 read as
   * `vec4`s from workgroup memory, op(A) staged k-major, the next k-step's loads held in registers while this
   * one computes. Needs tm and tn multiples of 4. Default false: the strided kernel.
   */
  blocked?: boolean;
}

/** 64 × 64 blocks, 4 × 4 outputs per invocation, k-steps of 16 (8 KiB of workgroup memory). */
export const SHARED_GEMM_TILE: SharedGemmTile = { wx: 16, wy: 16, tm: 4, tn: 4, bk: 16 };

/** 128 × 128 blocks, 8 × 8 outputs per invocation, k-steps of 8 (8 KiB): fewer loads per FMA, fewer workgroups. */
export const LARGE_SHARED_GEMM_TILE: SharedGemmTile = { wx: 16, wy: 16, tm: 8, tn: 8, bk: 8 };

/**
 * The blocked kernel on 128 × 128 blocks: 8 × 8 outputs per invocation from four `vec4` reads of workgroup memory
 * per k (16 scalar reads in the strided kernel), k-steps of 8 (8.3 KiB). Not a default until a GPU has timed it
 * (bench/NOTES.md entry 45); `bench gemm` times it on GPU adapters.
 */
export const BLOCKED_SHARED_GEMM_TILE: SharedGemmTile = {
  wx: 16,
  wy: 16,
  tm: 8,
  tn: 8,
  bk: 8,
  blocked: true,
};

/** The blocked kernel on 64 × 64 blocks (4 × 4 outputs per invocation, k-steps of 16), for products with few blocks. */
export const BLOCKED_SMALL_SHARED_GEMM_TILE: SharedGemmTile = {
  wx: 16,
  wy: 16,
  tm: 4,
  tn: 4,
  bk: 16,
  blocked: true,
};

/** Throws unless `tile` is one the generator supports on a device with these limits. */
export function checkSharedTile(tile: SharedGemmTile, limits: GPUSupportedLimits): void {
  const { wx, wy, tm, tn, bk } = tile;
  const threads = wx * wy, bm = wy * tm, bn = wx * tn;
  if (![wx, wy, tm, tn, bk].every((v) => Number.isInteger(v) && v >= 1) || tn % 4 !== 0) {
    throw new Error(
      `gemm: shared tile ${JSON.stringify(tile)} needs positive integers and tn a multiple of 4`,
    );
  }
  if (tile.blocked && tm % 4 !== 0) {
    throw new Error(`gemm: blocked shared tile ${JSON.stringify(tile)} needs tm a multiple of 4`);
  }
  if ((bm * bk) % threads !== 0 || (bn * bk) % threads !== 0) {
    throw new Error(
      `gemm: shared tile ${JSON.stringify(tile)}: the ${bm}x${bk} and ${bk}x${bn} blocks must split evenly ` +
        `over its ${threads} invocations`,
    );
  }
  if (threads > limits.maxComputeInvocationsPerWorkgroup) {
    throw new Error(`gemm: shared tile ${wx}x${wy} exceeds maxComputeInvocationsPerWorkgroup`);
  }
  if (sharedBytes(tile) > limits.maxComputeWorkgroupStorageSize) {
    throw new Error(
      `gemm: shared tile ${JSON.stringify(tile)} needs more workgroup memory than the adapter has`,
    );
  }
}

/** Bytes of workgroup memory a tile stages (the blocked kernel pads each k-row by one vec4). */
function sharedBytes(tile: SharedGemmTile): number {
  const bm = tile.wy * tile.tm, bn = tile.wx * tile.tn;
  return 4 * tile.bk * (bm + bn + (tile.blocked ? 8 : 0));
}

/** WGSL of one workgroup-memory GEMM variant (exported for inspection and tests). */
export function gemmSharedWgsl(
  tile: SharedGemmTile,
  opts: { transA: boolean; transB: boolean; bias: boolean; accumulate: boolean },
): string {
  if (tile.blocked) return gemmSharedBlockedWgsl(tile, opts);
  const { wx, wy, tm, tn, bk } = tile;
  const threads = wx * wy, bm = wy * tm, bn = wx * tn, nv = tn / 4;
  const L: string[] = [];
  for (let i = 0; i < tm; i++) for (let v = 0; v < nv; v++) L.push(`  var acc${i}_${v} = vec4<f32>(0.0);`);
  L.push(`  for (var k0 = 0u; k0 < p.k; k0 += ${bk}u) {`);
  // Staging: element e = li + s·threads of each block, walking the stored layout's contiguous dimension.
  for (let s = 0; s < (bm * bk) / threads; s++) {
    const e = `(li + ${s * threads}u)`;
    const [r, q] = opts.transA ? [`${e} % ${bm}u`, `${e} / ${bm}u`] : [`${e} / ${bk}u`, `${e} % ${bk}u`];
    L.push(`    { let r = ${r}; let q = ${q}; let gr = rowBase + r; let gq = k0 + q; var v = 0.0;`);
    const at = opts.transA ? "gq * p.lda + gr" : "gr * p.lda + gq";
    L.push(`      if (gr < p.m && gq < p.k) { v = A[oA + ${at}]; }`);
    L.push(`      As[q * ${bm}u + r] = v; }`);
  }
  for (let s = 0; s < (bn * bk) / threads; s++) {
    const e = `(li + ${s * threads}u)`;
    const [c, q] = opts.transB ? [`${e} / ${bk}u`, `${e} % ${bk}u`] : [`${e} % ${bn}u`, `${e} / ${bn}u`];
    L.push(`    { let c = ${c}; let q = ${q}; let gc = colBase + c; let gq = k0 + q; var v = 0.0;`);
    const at = opts.transB ? "gc * p.ldb + gq" : "gq * p.ldb + gc";
    L.push(`      if (gc < p.n && gq < p.k) { v = B[oB + ${at}]; }`);
    L.push(`      Bs[q * ${bn}u + c] = v; }`);
  }
  L.push(`    workgroupBarrier();`);
  L.push(`    for (var kk = 0u; kk < ${bk}u; kk++) {`);
  for (let i = 0; i < tm; i++) L.push(`      let a${i} = As[kk * ${bm}u + l.y + ${i * wy}u];`);
  for (let v = 0; v < nv; v++) {
    const bs = [0, 1, 2, 3].map((u) => `Bs[kk * ${bn}u + l.x + ${(4 * v + u) * wx}u]`).join(", ");
    L.push(`      let b${v} = vec4<f32>(${bs});`);
  }
  for (let i = 0; i < tm; i++) for (let v = 0; v < nv; v++) L.push(`      acc${i}_${v} += a${i} * b${v};`);
  L.push(`    }`);
  L.push(`    workgroupBarrier();`);
  L.push(`  }`);
  L.push(`  let col0 = colBase + l.x;`);
  L.push(
    ...storeBlockWgsl(tm, tn, stridedRows(wy), (j) => `col0 + ${j * wx}u`, {
      bias: opts.bias,
      accumulate: opts.accumulate,
    }),
  );
  L.unshift(`  let row0 = rowBase + l.y;`);
  return sharedKernelWgsl(tile, opts.bias, `array<f32, ${bk * bm}>`, `array<f32, ${bk * bn}>`, L);
}

/**
 * A workgroup-memory GEMM kernel around `body`: the bindings, the blocks `As` and `Bs` of the given WGSL types,
 * and a `main` that sets the batch element's offsets `oA`, `oB`, `oC` and the block's first row and column
 * (`rowBase`, `colBase`) before the body's lines.
 */
function sharedKernelWgsl(
  tile: SharedGemmTile,
  bias: boolean,
  as: string,
  bs: string,
  body: string[],
): string {
  return /* wgsl */ `${gemmBindingsWgsl(bias)}
var<workgroup> As: ${as};
var<workgroup> Bs: ${bs};

@compute @workgroup_size(${tile.wx}, ${tile.wy})
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_id) l: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let zo = wg.z / p.inner;
  let zi = wg.z % p.inner;
  let oA = p.offA + zo * p.sA0 + zi * p.sA1;
  let oB = p.offB + zo * p.sB0 + zi * p.sB1;
  let oC = p.offC + zo * p.sC0 + zi * p.sC1;
  let rowBase = wg.y * ${tile.wy * tile.tm}u;
  let colBase = wg.x * ${tile.wx * tile.tn}u;
${body.join("\n")}
}
`;
}

/**
 * WGSL of the blocked workgroup-memory GEMM (`tile.blocked`), the textbook layout for GPUs that the strided
 * kernel above does not use. Per k-step of `bk`:
 * - op(A)'s BM × bk block is staged k-major and op(B)'s bk × BN block k-major too, each k-row as BM/4 (BN/4)
 *   `vec4`s plus one of padding, so that the staging stores of operands contiguous along k (x·Wᵀ's W) fall in
 *   distinct banks;
 * - invocation (l.x, l.y) owns rows `rowBase + g·4·wy + 4·l.y + u` and columns `colBase + v·4·wx + 4·l.x + c`
 *   (g < tm/4, v < tn/4, u, c < 4): per k it reads tm/4 + tn/4 `vec4`s of workgroup memory for tm·tn
 *   multiply-adds (the strided kernel reads tm + tn scalars), and a warp's reads of op(B) are consecutive;
 * - the next k-step's values of both operands are loaded from global memory into registers before this step's
 *   multiply-adds, so their latency overlaps the arithmetic (one block staged, two barriers per step).
 *
 * Each output's sum runs over k in the same order as in every other GEMM kernel here.
 */
export function gemmSharedBlockedWgsl(
  tile: SharedGemmTile,
  opts: { transA: boolean; transB: boolean; bias: boolean; accumulate: boolean },
): string {
  const { wx, wy, tm, tn, bk } = tile;
  const threads = wx * wy, bm = wy * tm, bn = wx * tn, mv = tm / 4, nv = tn / 4;
  // Row strides of the staged blocks in vec4s: one vec4 of padding per k-row.
  const sa = bm / 4 + 1, sb = bn / 4 + 1;
  const na = (bm * bk) / threads, nb = (bn * bk) / threads;
  const X = "xyzw";
  // Element e of a block walks the stored layout's contiguous dimension (coalesced global loads).
  const elemA = (s: number) => {
    const e = `(li + ${s * threads}u)`;
    return opts.transA ? [`${e} % ${bm}u`, `${e} / ${bm}u`] : [`${e} / ${bk}u`, `${e} % ${bk}u`];
  };
  const elemB = (s: number) => {
    const e = `(li + ${s * threads}u)`;
    return opts.transB ? [`${e} / ${bk}u`, `${e} % ${bk}u`] : [`${e} % ${bn}u`, `${e} / ${bn}u`];
  };
  const loads = (k0: string, indent: string): string[] => {
    const L: string[] = [];
    for (let s = 0; s < na; s++) {
      const [r, q] = elemA(s);
      const at = opts.transA
        ? `(${k0} + ${q}) * p.lda + rowBase + ${r}`
        : `(rowBase + ${r}) * p.lda + ${k0} + ${q}`;
      L.push(`${indent}ga${s} = 0.0;`);
      L.push(`${indent}if (rowBase + ${r} < p.m && ${k0} + ${q} < p.k) { ga${s} = A[oA + ${at}]; }`);
    }
    for (let s = 0; s < nb; s++) {
      const [c, q] = elemB(s);
      const at = opts.transB
        ? `(colBase + ${c}) * p.ldb + ${k0} + ${q}`
        : `(${k0} + ${q}) * p.ldb + colBase + ${c}`;
      L.push(`${indent}gb${s} = 0.0;`);
      L.push(`${indent}if (colBase + ${c} < p.n && ${k0} + ${q} < p.k) { gb${s} = B[oB + ${at}]; }`);
    }
    return L;
  };
  const L: string[] = [];
  for (let i = 0; i < tm; i++) for (let v = 0; v < nv; v++) L.push(`  var acc${i}_${v} = vec4<f32>(0.0);`);
  for (let s = 0; s < na; s++) L.push(`  var ga${s} = 0.0;`);
  for (let s = 0; s < nb; s++) L.push(`  var gb${s} = 0.0;`);
  L.push(...loads("0u", "  "));
  L.push(`  for (var k0 = 0u; k0 < p.k; k0 += ${bk}u) {`);
  for (let s = 0; s < na; s++) {
    const [r, q] = elemA(s);
    L.push(`    { let r = ${r}; As[(${q}) * ${sa}u + r / 4u][r % 4u] = ga${s}; }`);
  }
  for (let s = 0; s < nb; s++) {
    const [c, q] = elemB(s);
    L.push(`    { let c = ${c}; Bs[(${q}) * ${sb}u + c / 4u][c % 4u] = gb${s}; }`);
  }
  L.push(`    workgroupBarrier();`);
  L.push(`    let k1 = k0 + ${bk}u;`);
  L.push(`    if (k1 < p.k) {`);
  L.push(...loads("k1", "      "));
  L.push(`    }`);
  L.push(`    for (var kk = 0u; kk < ${bk}u; kk++) {`);
  for (let g = 0; g < mv; g++) L.push(`      let a${g} = As[kk * ${sa}u + ${g * wy}u + l.y];`);
  for (let v = 0; v < nv; v++) L.push(`      let b${v} = Bs[kk * ${sb}u + ${v * wx}u + l.x];`);
  for (let i = 0; i < tm; i++) {
    for (let v = 0; v < nv; v++) L.push(`      acc${i}_${v} += a${i >> 2}.${X[i & 3]} * b${v};`);
  }
  L.push(`    }`);
  L.push(`    workgroupBarrier();`);
  L.push(`  }`);
  const row = (i: number) => `rowBase + ${(i >> 2) * 4 * wy + (i & 3)}u + 4u * l.y`;
  const col = (j: number) => `colBase + ${(j >> 2) * 4 * wx + (j & 3)}u + 4u * l.x`;
  L.push(...storeBlockWgsl(tm, tn, row, col, { bias: opts.bias, accumulate: opts.accumulate }));
  return sharedKernelWgsl(tile, opts.bias, `array<vec4<f32>, ${bk * sa}>`, `array<vec4<f32>, ${bk * sb}>`, L);
}
