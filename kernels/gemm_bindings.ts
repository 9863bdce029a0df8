/**
 * The uniform struct and bindings of the GEMM kernels that read their operands from storage buffers (the
 * buffer-fed kernels of `kernels/gemm.ts` and the workgroup-memory kernel of `kernels/gemm_shared.ts`). The
 * launcher in `gemm.ts` fills the uniforms in this order: m, n, k, lda, ldb, ldc, offA, offB, offC, inner, the
 * batch strides of A, B and C (outer, inner), then alpha.
 * @module
 */

/**
 * WGSL declarations: `p` (binding 0), `A` and `B` (read, as arrays of `operand`), `C` (read-write f32) and,
 * with `bias`, `bias` (binding 4).
 *
 * @example
 * ```ts
 * const wgsl = gemmBindingsWgsl(true, "vec4<f32>") + "@compute @workgroup_size(8, 8) fn main() { ... }";
 * ```
 */
export function gemmBindingsWgsl(bias: boolean, operand: "f32" | "vec4<f32>" = "f32"): string {
  return /* wgsl */ `
struct P {
  m: u32, n: u32, k: u32, lda: u32, ldb: u32, ldc: u32, offA: u32, offB: u32, offC: u32, inner: u32,
  sA0: u32, sA1: u32, sB0: u32, sB1: u32, sC0: u32, sC1: u32, alpha: f32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<${operand}>;
@group(0) @binding(2) var<storage, read> B: array<${operand}>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
${bias ? "@group(0) @binding(4) var<storage, read> bias: array<f32>;" : ""}
`;
}
