/**
 * Texture-staged element-wise maps for CPU adapters: `out[i] = op(i, in0[i], in1[i], …)` for i < n.
 *
 * Why: on llvmpipe every storage-buffer load or scalar store costs ~10 ns per lane (a per-lane loop with a
 * bounds check), so a buffer-fed `o[i] = a[i] + b[i]` runs at ~0.3 GB/s whatever the workgroup size or
 * grid (bench/NOTES.md, "Element-wise and row kernels on llvmpipe"), while `copyBufferToTexture` runs at
 * memcpy speed and `textureLoad` from an rgba32float storage texture and vec4 buffer stores are vectorised.
 * So each input is copied into a cached rgba32float texture (the flat layout of `texture_stage.ts`), one
 * invocation per texel computes four outputs and stores them as one vec4. When n is not a multiple of 4
 * (a vec4 store would overrun the output) or too large for the textures, the whole map runs as the plain
 * one-element-per-invocation buffer kernel (one dispatch either way).
 * Both kernels evaluate the same WGSL `op`, so results are bit-identical between the two paths.
 *
 * An input may be the output buffer itself (in-place maps): the vec4 kernel reads its staged copy, the
 * scalar kernel reads `o[i]` before writing it.
 * @module
 */
import type { Recorder } from "./recorder.ts";
import type { Gpu } from "./device.ts";
import { canStageFlat, FLAT_ROW_TEXELS, stageFlat } from "./texture_stage.ts";

const ROW_TEXELS = FLAT_ROW_TEXELS;
/** Invocations per workgroup of both kernels. */
const WG = 64;

/** Description of one element-wise map (see {@link elementwiseMap}). */
export interface ElementwiseMapSpec {
  /** Profiler label; with `op` it forms the pipeline-cache key, so it must identify `prelude`. */
  label: string;
  /** WGSL placed before the kernels (helper functions such as `ERF_WGSL` or `RNG_WGSL`). */
  prelude?: string;
  /**
   * WGSL body of `fn op(i: u32, v0: f32, v1: f32, …) -> f32` (one `vK` per input, i the element index);
   * uniforms are available as `p.<name>`.
   */
  op: string;
  /** Extra u32 uniforms, in order, as name → value. */
  u32?: [string, number][];
  /** Extra f32 uniforms, in order, as name → value. */
  f32?: [string, number][];
  /** Input buffers (element 0 at byte 0); any of them may be `out` itself. */
  inputs: GPUBuffer[];
  /** Output buffer, written for i < n only. */
  out: GPUBuffer;
  /** Number of elements. */
  n: number;
  /** Profiler counts per element. */
  flopsPerElement: number;
  /** Profiler bytes per element (4 × (elements read + written)). */
  bytesPerElement: number;
}

/** Whether `n` elements take the texture path on this adapter (n a positive multiple of 4 that fits). */
export function elementwiseMapStaged(gpu: Gpu, n: number): boolean {
  return canStageFlat(gpu, n);
}

function header(spec: ElementwiseMapSpec): string {
  const fields = ["n: u32", "stride: u32"];
  for (const [name] of spec.u32 ?? []) fields.push(`${name}: u32`);
  for (const [name] of spec.f32 ?? []) fields.push(`${name}: f32`);
  const args = spec.inputs.map((_, k) => `v${k}: f32`).join(", ");
  return `${spec.prelude ?? ""}
struct P { ${fields.join(", ")} }
@group(0) @binding(0) var<uniform> p: P;
fn op(i: u32${args ? ", " + args : ""}) -> f32 {
${spec.op}
}
`;
}

/** WGSL of the texture-fed vec4 kernel of `spec` (exported for inspection). */
export function elementwiseMapVec4Wgsl(spec: ElementwiseMapSpec): string {
  const k = spec.inputs.length;
  const L: string[] = [header(spec)];
  for (let j = 0; j < k; j++) {
    L.push(`@group(0) @binding(${j + 1}) var t${j}: texture_storage_2d<rgba32float, read>;`);
  }
  L.push(`@group(0) @binding(${k + 1}) var<storage, read_write> o: array<vec4<f32>>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let q = g.x + g.y * ${ROW_TEXELS}u;
  if (q >= p.n / 4u) { return; }
  let i = 4u * q;`);
  for (let j = 0; j < k; j++) L.push(`  let a${j} = textureLoad(t${j}, g.xy);`);
  const call = (c: string, off: number) =>
    `op(i + ${off}u${spec.inputs.map((_, j) => `, a${j}.${c}`).join("")})`;
  L.push(`  o[q] = vec4<f32>(${call("x", 0)}, ${call("y", 1)}, ${call("z", 2)}, ${call("w", 3)});\n}`);
  return L.join("\n");
}

/** WGSL of the buffer-fed one-element-per-invocation kernel of `spec` (the fallback). */
export function elementwiseMapScalarWgsl(spec: ElementwiseMapSpec): string {
  const L: string[] = [header(spec)];
  let b = 1;
  const reads = spec.inputs.map((buf, j) => {
    if (buf === spec.out) return "o[i]";
    L.push(`@group(0) @binding(${b++}) var<storage, read> x${j}: array<f32>;`);
    return `x${j}[i]`;
  });
  L.push(`@group(0) @binding(${b}) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride;
  if (i >= p.n) { return; }
  o[i] = op(i${reads.map((r) => ", " + r).join("")});
}`);
  return L.join("\n");
}

/**
 * Records `out[i] = op(i, inputs…[i])` for i < n as one dispatch: the texture-staged vec4 kernel when
 * {@link elementwiseMapStaged}, else the scalar buffer kernel. Arguments are validated by the calling launcher.
 *
 * @example
 * ```ts
 * elementwiseMap(rec, {
 *   label: "add", op: "return v0 + v1;", inputs: [a, b], out, n, flopsPerElement: 1, bytesPerElement: 12,
 * });
 * ```
 */
export function elementwiseMap(rec: Recorder, spec: ElementwiseMapSpec): void {
  const gpu = rec.gpu;
  const { n, label } = spec;
  if (n === 0) return;
  const inPlace = spec.inputs.map((b) => (b === spec.out ? "o" : "b")).join("");
  const extraU = (spec.u32 ?? []).map(([, v]) => v);
  const extraF = (spec.f32 ?? []).map(([, v]) => v);
  if (elementwiseMapStaged(gpu, n)) {
    const n4 = n / 4;
    const rows = Math.ceil(n4 / ROW_TEXELS);
    const views = spec.inputs.map((buf, j) => stageFlat(rec, `emap${j}`, buf, n));
    rec.dispatch({
      pipeline: gpu.pipeline(
        `emap-v4-${label}-${spec.inputs.length}-${spec.op}`,
        () => elementwiseMapVec4Wgsl(spec),
      ),
      buffers: [...views, spec.out],
      u32: [n, 0, ...extraU],
      f32: extraF,
      groups: [ROW_TEXELS / WG, rows],
      label,
      shape: `${n}`,
      flops: spec.flopsPerElement * n,
      bytes: spec.bytesPerElement * n,
    });
    return;
  }
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  const total = Math.ceil(n / WG);
  const x = Math.max(1, Math.min(total, max));
  const y = Math.ceil(total / x);
  if (y > max) throw new Error(`${label}: ${n} elements exceed ${max}×${max} workgroups of ${WG}`);
  rec.dispatch({
    pipeline: gpu.pipeline(`emap-s-${label}-${inPlace}-${spec.op}`, () => elementwiseMapScalarWgsl(spec)),
    buffers: [...spec.inputs.filter((b) => b !== spec.out), spec.out],
    u32: [n, x * WG, ...extraU],
    f32: extraF,
    groups: [x, y],
    label,
    shape: `${n}`,
    flops: spec.flopsPerElement * n,
    bytes: spec.bytesPerElement * n,
  });
}
