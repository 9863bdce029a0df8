/**
 * Float64 reference for `kernels/gemm.ts`: the same strided, transposed, batched, biased GEMM as plain loops.
 * Used by the kernel tests and by the model's float64 reference.
 * @module
 */

/** Shape and layout of a reference GEMM; the same fields and defaults as `GemmArgs` without the buffers. */
export interface GemmRefArgs {
  /** Rows of op(A) and of C. */
  m: number;
  /** Columns of op(B) and of C. */
  n: number;
  /** Inner dimension. */
  k: number;
  /** op(A)[i,p] = A[offA + p*lda + i] when true, A[offA + i*lda + p] when false. */
  transA?: boolean;
  /** op(B)[p,j] = B[offB + j*ldb + p] when true, B[offB + p*ldb + j] when false. */
  transB?: boolean;
  /** Row stride of A as stored (default k, or m when transA). */
  lda?: number;
  /** Row stride of B as stored (default n, or k when transB). */
  ldb?: number;
  /** Row stride of C (default n). */
  ldc?: number;
  /** Element offset of A (default 0). */
  offA?: number;
  /** Element offset of B (default 0). */
  offB?: number;
  /** Element offset of C (default 0). */
  offC?: number;
  /** Scale of the product (default 1). */
  alpha?: number;
  /** Add into C instead of overwriting it. */
  accumulate?: boolean;
  /** [outer, inner] batch counts (default [1, 1]). */
  batch?: [number, number];
  /** Per-level element strides of A's batch elements. */
  strideA?: [number, number];
  /** Per-level element strides of B's batch elements. */
  strideB?: [number, number];
  /** Per-level element strides of C's batch elements. */
  strideC?: [number, number];
}

/**
 * C (=|+=) alpha·op(A)·op(B) (+ bias[j]) in float64, for every batch element; returns `c` (a new zeroed array
 * of `cLength` elements when `c` is omitted). Entries of C outside the addressed m×n blocks are left unchanged.
 *
 * @example
 * ```ts
 * const c = gemmRef({ m: 2, n: 2, k: 1 }, [1, 2], [3, 4]); // [[3, 4], [6, 8]]
 * ```
 */
export function gemmRef(
  args: GemmRefArgs,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  c?: Float64Array,
  bias?: ArrayLike<number>,
  cLength?: number,
): Float64Array {
  const { m, n, k } = args;
  const transA = args.transA ?? false, transB = args.transB ?? false;
  const lda = args.lda ?? (transA ? m : k);
  const ldb = args.ldb ?? (transB ? k : n);
  const ldc = args.ldc ?? n;
  const alpha = args.alpha ?? 1;
  const [outer, inner] = args.batch ?? [1, 1];
  const sA = args.strideA ?? [0, 0], sB = args.strideB ?? [0, 0], sC = args.strideC ?? [0, 0];
  const out = c ?? new Float64Array(cLength ?? (args.offC ?? 0) + (m - 1) * ldc + n);
  for (let z = 0; z < outer * inner; z++) {
    const zo = Math.floor(z / inner), zi = z % inner;
    const oA = (args.offA ?? 0) + zo * sA[0] + zi * sA[1];
    const oB = (args.offB ?? 0) + zo * sB[0] + zi * sB[1];
    const oC = (args.offC ?? 0) + zo * sC[0] + zi * sC[1];
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = transA ? a[oA + p * lda + i] : a[oA + i * lda + p];
          const bv = transB ? b[oB + j * ldb + p] : b[oB + p * ldb + j];
          s += av * bv;
        }
        let v = alpha * s + (bias ? bias[j] : 0);
        if (args.accumulate) v += out[oC + i * ldc + j];
        out[oC + i * ldc + j] = v;
      }
    }
  }
  return out;
}
