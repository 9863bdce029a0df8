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
import { storeBlockWgsl } from "./gemm_texture.ts";
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
}

/** 64 × 64 blocks, 4 × 4 outputs per invocation, k-steps of 16 (8 KiB of workgroup memory). */
export const SHARED_GEMM_TILE: SharedGemmTile = { wx: 16, wy: 16, tm: 4, tn: 4, bk: 16 };

/** 128 × 128 blocks, 8 × 8 outputs per invocation, k-steps of 8 (8 KiB): fewer loads per FMA, fewer workgroups. */
export const LARGE_SHARED_GEMM_TILE: SharedGemmTile = { wx: 16, wy: 16, tm: 8, tn: 8, bk: 8 };

/** Throws unless `tile` is one the generator supports on a device with these limits. */
export function checkSharedTile(tile: SharedGemmTile, limits: GPUSupportedLimits): void {
  const { wx, wy, tm, tn, bk } = tile;
  const threads = wx * wy, bm = wy * tm, bn = wx * tn;
  if (![wx, wy, tm, tn, bk].every((v) => Number.isInteger(v) && v >= 1) || tn % 4 !== 0) {
    throw new Error(
      `gemm: shared tile ${JSON.stringify(tile)} needs positive integers and tn a multiple of 4`,
    );
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
  if (4 * bk * (bm + bn) > limits.maxComputeWorkgroupStorageSize) {
    throw new Error(
      `gemm: shared tile ${JSON.stringify(tile)} needs more workgroup memory than the adapter has`,
    );
  }
}

/** WGSL of one workgroup-memory GEMM variant (exported for inspection and tests). */
export function gemmSharedWgsl(
  tile: SharedGemmTile,
  opts: { transA: boolean; transB: boolean; bias: boolean; accumulate: boolean },
): string {
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
    ...storeBlockWgsl(tm, tn, wy, (j) => `col0 + ${j * wx}u`, {
      bias: opts.bias,
      accumulate: opts.accumulate,
    }),
  );
  return /* wgsl */ `${gemmBindingsWgsl(opts.bias)}
var<workgroup> As: array<f32, ${bk * bm}>;
var<workgroup> Bs: array<f32, ${bk * bn}>;

@compute @workgroup_size(${wx}, ${wy})
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
  let rowBase = wg.y * ${bm}u;
  let colBase = wg.x * ${bn}u;
  let row0 = rowBase + l.y;
${L.join("\n")}
}
`;
}
