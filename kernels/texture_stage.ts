/**
 * Staging of storage buffers into cached rgba32float textures by `copyBufferToTexture`, for kernels that run
 * on CPU adapters: on llvmpipe a storage-buffer load costs ~10 ns per lane (a per-lane loop with a bounds
 * check) while a buffer-to-texture copy runs at memcpy speed and `textureLoad` from a read-only storage
 * texture is vectorised (bench/NOTES.md, "Element-wise and row kernels on llvmpipe").
 *
 * Two layouts:
 * - flat: element e is component e mod 4 of texel t = e / 4 at (t mod 256, t / 256) (WGSL {@link FLAT_TEXEL_WGSL});
 * - matrix: a row-major [rows, cols] matrix with cols a multiple of 64 (so that a row is a multiple of 256
 *   bytes); element (i, c) is component c mod 4 of texel (c / 4, i).
 *
 * Textures are cached per Gpu and role, grown and never shrunk; reusing one for consecutive dispatches of one
 * command buffer is safe because WebGPU orders the passes and copies of a command encoder.
 * @module
 */
import type { Gpu } from "./device.ts";
import type { Recorder } from "./recorder.ts";

/** Texels per row of the flat layout (4096 bytes per row). */
export const FLAT_ROW_TEXELS = 256;

/** WGSL `flat_texel(t)`: the coordinate of texel t (elements 4t..4t+3) of a flat-staged buffer. */
export const FLAT_TEXEL_WGSL = /* wgsl */ `
fn flat_texel(t: u32) -> vec2<u32> { return vec2<u32>(t & ${FLAT_ROW_TEXELS - 1}u, t >> ${
  Math.log2(FLAT_ROW_TEXELS)
}u); }
`;

/** A cached texture and its one view. */
export interface CachedTexture {
  tex: GPUTexture;
  view: GPUTextureView;
}

/**
 * A new rgba32float texture (storage binding and copy destination) of width × height texels with its one view:
 * the one place that makes the textures of the staging, the GEMM packing and the packed frozen weights.
 */
export function rgba32Texture(gpu: Gpu, label: string, width: number, height: number): CachedTexture {
  const tex = gpu.device.createTexture({
    label,
    size: [width, height],
    format: "rgba32float",
    usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
  });
  return { tex, view: tex.createView() };
}

const cache = new WeakMap<Gpu, Map<string, CachedTexture>>();
/**
 * Textures replaced by larger ones. They stay referenced (and are not destroyed: commands recorded but not yet
 * submitted may still use them), and each texture has one view made once, so that no staging object is left
 * for the garbage collector (the test processes sometimes abort at exit with "double free or corruption";
 * that happens with staging disabled too, but there is no reason to add GC-driven GPU object frees).
 */
const retired = new WeakMap<Gpu, CachedTexture[]>();

/**
 * Bytes of this Gpu's cached textures (the staging here and the texture GEMM's packing and staging; not the
 * packed frozen weights, which `PackedWeightCache` counts): `live`, those in use, and `replaced`, those that
 * larger ones replaced and that are kept until exit (see above). Both are resident on CPU adapters.
 *
 * @example
 * ```ts
 * const { live, replaced } = cachedTextureBytes(gpu); // after a training step: its staging memory
 * ```
 */
export function cachedTextureBytes(gpu: Gpu): { live: number; replaced: number } {
  const bytes = (c: CachedTexture) => 16 * c.tex.width * c.tex.height;
  let live = 0, replaced = 0;
  for (const c of cache.get(gpu)?.values() ?? []) live += bytes(c);
  for (const c of retired.get(gpu) ?? []) replaced += bytes(c);
  return { live, replaced };
}

/**
 * The cached rgba32float texture (storage binding, copy destination) named `role` on this Gpu, if it has at least
 * width × height texels; otherwise a new one of the size `allocate(old)` returns (which must cover width ×
 * height), replacing it. Shared by the staging here and the texture GEMM's packed operands.
 *
 * @example
 * ```ts
 * const { view } = cachedTexture(gpu, "stage x", 64, rows, (old) => [64, Math.max(rows, 2 * (old?.height ?? 0))]);
 * ```
 */
export function cachedTexture(
  gpu: Gpu,
  role: string,
  width: number,
  height: number,
  allocate: (old: GPUTexture | undefined) => [number, number],
): CachedTexture {
  let perGpu = cache.get(gpu);
  if (!perGpu) cache.set(gpu, perGpu = new Map());
  const have = perGpu.get(role);
  if (have && have.tex.width >= width && have.tex.height >= height) return have;
  const made = rgba32Texture(gpu, role, ...allocate(have?.tex));
  if (have) {
    let list = retired.get(gpu);
    if (!list) retired.set(gpu, list = []);
    list.push(have);
  }
  perGpu.set(role, made);
  return made;
}

/** The staging texture of `role`: width as asked, height doubled on growth (fewer re-allocations). */
function stageTexture(gpu: Gpu, role: string, width: number, height: number): CachedTexture {
  const max = gpu.limits.maxTextureDimension2D;
  return cachedTexture(gpu, `stage ${role}`, width, height, (old) => [
    Math.max(width, old?.width ?? 0),
    Math.min(max, Math.max(height, old ? Math.min(2 * old.height, max) : 0, 16)),
  ]);
}

/** Whether `count` elements can be flat-staged on this adapter (whole texels, within the texture height). */
export function canStageFlat(gpu: Gpu, count: number): boolean {
  return count > 0 && count % 4 === 0 &&
    Math.ceil(count / 4 / FLAT_ROW_TEXELS) <= gpu.limits.maxTextureDimension2D;
}

/** Whether a [rows, cols] matrix can be matrix-staged on this adapter. */
export function canStageMatrix(gpu: Gpu, rows: number, cols: number): boolean {
  const max = gpu.limits.maxTextureDimension2D;
  return rows > 0 && cols > 0 && cols % 64 === 0 && cols / 4 <= max && rows <= max;
}

/**
 * Records copying the first `count` elements of `buf` (count a multiple of 4, see {@link canStageFlat}) into
 * the flat texture of `role` and returns its view.
 *
 * @example
 * ```ts
 * const view = stageFlat(rec, "t", tBuffer, m * r); // then textureLoad(T, flat_texel(e / 4u))[e % 4u]
 * ```
 */
export function stageFlat(rec: Recorder, role: string, buf: GPUBuffer, count: number): GPUTextureView {
  if (!canStageFlat(rec.gpu, count)) throw new Error(`stageFlat: cannot stage ${count} elements of ${role}`);
  const texels = count / 4;
  const full = Math.floor(texels / FLAT_ROW_TEXELS), rest = texels % FLAT_ROW_TEXELS;
  const { tex, view } = stageTexture(rec.gpu, role, FLAT_ROW_TEXELS, full + (rest ? 1 : 0));
  const bytesPerRow = FLAT_ROW_TEXELS * 16;
  if (full > 0) {
    rec.copyBufferToTexture({ buffer: buf, bytesPerRow }, { texture: tex }, [FLAT_ROW_TEXELS, full]);
  }
  if (rest > 0) {
    rec.copyBufferToTexture(
      { buffer: buf, offset: full * bytesPerRow, bytesPerRow },
      { texture: tex, origin: [0, full] },
      [rest, 1],
    );
  }
  return view;
}

/**
 * Records copying the row-major [rows, cols] matrix at the start of `buf` (see {@link canStageMatrix}) into
 * the matrix texture of `role` and returns its view.
 */
export function stageMatrix(
  rec: Recorder,
  role: string,
  buf: GPUBuffer,
  rows: number,
  cols: number,
): GPUTextureView {
  if (!canStageMatrix(rec.gpu, rows, cols)) {
    throw new Error(`stageMatrix: cannot stage a ${rows}x${cols} matrix for ${role}`);
  }
  const { tex, view } = stageTexture(rec.gpu, role, cols / 4, rows);
  rec.copyBufferToTexture({ buffer: buf, bytesPerRow: cols * 4 }, { texture: tex }, [cols / 4, rows]);
  return view;
}
