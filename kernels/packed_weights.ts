/**
 * Packed frozen operands of the texture-fed GEMM: the `Bt` texture of a weight that does not change between
 * products is packed once and kept, instead of being packed again for every product. On llvmpipe the packing of
 * a weight costs about 10 ms per million elements: for MiniLM at batch 4 × 56 tokens, packing the frozen
 * projection weights was 23 % of a training step (bench/NOTES.md entry 19).
 *
 * A cache belongs to its owner (the model), which knows when a weight changes: it calls {@link forget} after
 * writing a weight (FedEx merges a residual into the frozen weights every round) and {@link destroy} when done.
 * The cache holds at most `budgetBytes` of textures; products whose weight does not fit are packed per call as
 * before. Keys are the buffer and the layout of the packed view (offset, strides, rows, k), so the forward
 * product x·Wᵀ and the backward product dY·W of one weight get two entries.
 * @module
 */
import type { Gpu } from "./device.ts";
import type { PackedOperand } from "./gemm_texture.ts";
import { rgba32Texture } from "./texture_stage.ts";

/** One packed operand: its texture (width = rows of op(B)ᵀ, height = ceil(k/4)) and view. */
interface PackedEntry {
  tex: GPUTexture;
  view: GPUTextureView;
  bytes: number;
  /** The weight changed since it was packed: the next lookup packs it again into the same texture. */
  stale: boolean;
}

/** Packed `Bt` textures of frozen weights, within a byte budget. */
export class PackedWeightCache {
  readonly gpu: Gpu;
  /** Most bytes of textures this cache holds. */
  readonly budgetBytes: number;
  #entries = new Map<GPUBuffer, Map<string, PackedEntry>>();
  #bytes = 0;
  #hits = 0;
  #packs = 0;

  /**
   * @example
   * ```ts
   * const cache = new PackedWeightCache(gpu, 128 << 20);
   * gemm(rec, { a: x, b: w, c: y, m, n, k, transB: true, packedB: cache });
   * // … after changing w:
   * cache.forget(w);
   * ```
   */
  constructor(gpu: Gpu, budgetBytes: number) {
    if (!(budgetBytes >= 0)) {
      throw new Error(`PackedWeightCache: budget must be >= 0 bytes, got ${budgetBytes}`);
    }
    this.gpu = gpu;
    this.budgetBytes = budgetBytes;
  }

  /** Bytes of textures held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Products that found their weight packed, and weights packed into the cache, so far. */
  get stats(): { hits: number; packs: number } {
    return { hits: this.#hits, packs: this.#packs };
  }

  static #key(op: PackedOperand, k: number): string {
    return `${op.off}:${op.rs}:${op.ps}:${op.rows}:${k}`;
  }

  /**
   * The packed view of op(B)ᵀ = `op` (unbatched, inner dimension k): `{ view, fresh: false }` when cached;
   * `{ view, fresh: true }` for a new texture the caller must pack into (in the same command buffer, before the
   * product that reads it); null when it does not fit the budget.
   */
  lookup(op: PackedOperand, k: number): { view: GPUTextureView; fresh: boolean } | null {
    const key = PackedWeightCache.#key(op, k);
    const have = this.#entries.get(op.buf)?.get(key);
    if (have && !have.stale) {
      this.#hits++;
      return { view: have.view, fresh: false };
    }
    if (have) {
      have.stale = false;
      this.#packs++;
      return { view: have.view, fresh: true };
    }
    const width = op.rows, height = Math.ceil(k / 4), bytes = 16 * width * height;
    if (this.#bytes + bytes > this.budgetBytes) return null;
    const entry = {
      ...rgba32Texture(this.gpu, `packed ${op.buf.label} ${key}`, width, height),
      bytes,
      stale: false,
    };
    let perBuf = this.#entries.get(op.buf);
    if (!perBuf) this.#entries.set(op.buf, perBuf = new Map());
    perBuf.set(key, entry);
    this.#bytes += bytes;
    this.#packs++;
    return { view: entry.view, fresh: true };
  }

  /**
   * Marks every packed view of `buf` stale (call after writing it): the next product that reads it packs it again,
   * into the same texture (WebGPU orders that packing after earlier reads recorded in the same command buffer).
   */
  forget(buf: GPUBuffer): void {
    for (const e of this.#entries.get(buf)?.values() ?? []) e.stale = true;
  }

  /** Destroys every texture (after the last submit that used them). */
  destroy(): void {
    for (const perBuf of this.#entries.values()) for (const e of perBuf.values()) e.tex.destroy();
    this.#entries.clear();
    this.#bytes = 0;
  }
}
