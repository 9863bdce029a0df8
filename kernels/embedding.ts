/**
 * Embedding lookup from a frozen table that may be larger than one storage binding may see
 * (roberta-large's word table is 196 MiB; many adapters allow 128 MiB per binding): `EmbeddingTable` splits the
 * rows into chunks, each its own buffer within `maxStorageBufferBindingSize` and `maxBufferSize`, and
 * `embeddingGather` records one dispatch per chunk; each chunk serves the ids that fall in its row range.
 *
 * Ids must be in [0, rows); an out-of-range id yields a zero row (the first chunk's dispatch writes it), since
 * ids live on the GPU and cannot be checked on the host here.
 *
 * Profiler convention: flops 0 (1 per element when accumulating), bytes 4·(n·cols read + n·cols written
 * (+ n·cols read when accumulating) + n ids) per chunk dispatch divided evenly across chunks.
 * @module
 */
import type { Gpu } from "./device.ts";
import type { Recorder } from "./recorder.ts";
import { linearGrid, requireCount, requireDistinct, requireElements } from "./elementwise.ts";

/** One chunk of an embedding table: rows [rowStart, rowStart + rowCount) in its own buffer. */
export interface EmbeddingChunk {
  /** First table row held by this chunk. */
  readonly rowStart: number;
  /** Number of rows in this chunk. */
  readonly rowCount: number;
  /** The chunk's rows, row-major f32 [rowCount, cols]. */
  readonly buffer: GPUBuffer;
}

/**
 * A frozen [rows, cols] f32 table on the GPU, split into chunks that each fit one storage binding.
 *
 * @example
 * ```ts
 * const words = EmbeddingTable.create(gpu, wordData, 50265, 1024, "word_embeddings");
 * embeddingGather(rec, { table: words, ids, out: hidden, n: tokens });
 * ```
 */
export class EmbeddingTable {
  /** Rows of the whole table. */
  readonly rows: number;
  /** Columns (embedding width). */
  readonly cols: number;
  /** The chunks in row order. */
  readonly chunks: readonly EmbeddingChunk[];

  private constructor(rows: number, cols: number, chunks: EmbeddingChunk[]) {
    this.rows = rows;
    this.cols = cols;
    this.chunks = chunks;
  }

  /**
   * Uploads `data` ([rows, cols], row-major) in chunks of at most `maxChunkRows` rows (default: as many as
   * the adapter's binding and buffer limits allow; a smaller value exercises the chunked path in tests).
   */
  static create(
    gpu: Gpu,
    data: Float32Array,
    rows: number,
    cols: number,
    label = "embedding",
    maxChunkRows?: number,
  ): EmbeddingTable {
    const k = `EmbeddingTable ${label}`;
    requireCount(k, "rows", rows);
    requireCount(k, "cols", cols);
    if (rows === 0 || cols === 0) {
      throw new Error(`${k}: rows and cols must be at least 1, got ${rows}x${cols}`);
    }
    if (data.length !== rows * cols) {
      throw new Error(
        `${k}: data has ${data.length} values, expected rows*cols = ${rows}*${cols} = ${rows * cols}`,
      );
    }
    const limitBytes = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
    let chunkRows = Math.floor(limitBytes / (cols * 4));
    if (chunkRows < 1) {
      throw new Error(`${k}: one row of ${cols} floats exceeds the binding limit ${limitBytes}`);
    }
    if (maxChunkRows !== undefined) {
      requireCount(k, "maxChunkRows", maxChunkRows);
      if (maxChunkRows < 1) throw new Error(`${k}: maxChunkRows must be at least 1`);
      chunkRows = Math.min(chunkRows, maxChunkRows);
    }
    const chunks: EmbeddingChunk[] = [];
    for (let start = 0; start < rows; start += chunkRows) {
      const count = Math.min(chunkRows, rows - start);
      const buffer = gpu.upload(data.subarray(start * cols, (start + count) * cols), `${label}[${start}..]`);
      chunks.push({ rowStart: start, rowCount: count, buffer });
    }
    return new EmbeddingTable(rows, cols, chunks);
  }

  /** Frees the chunk buffers. */
  destroy(): void {
    for (const c of this.chunks) c.buffer.destroy();
  }
}

const WG = 64;
const GATHER_WGSL = (accumulate: boolean) => `
struct P { n: u32, stride: u32, cols: u32, rowStart: u32, rowCount: u32, tableRows: u32, ownsInvalid: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> chunk: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let e = g.x + g.y * p.stride;
  if (e >= p.n) { return; }
  let i = e / p.cols;
  let c = e % p.cols;
  let id = ids[i];
  // bitcast: negative ids become huge and fall outside every range
  let uid = bitcast<u32>(id);
  let local = uid - p.rowStart;
  if (uid >= p.rowStart && local < p.rowCount) {
    let v = chunk[local * p.cols + c];
    ${accumulate ? "o[e] = o[e] + v;" : "o[e] = v;"}
  } else if (p.ownsInvalid != 0u && uid >= p.tableRows) {
    ${accumulate ? "" : "o[e] = 0.0;"}
  }
}`;

/**
 * `out[i, :] (=|+=) table[ids[i], :]` for i < n; ids is an i32 buffer [n], out is [n, cols]. One dispatch per
 * chunk. Out-of-range ids give a zero row (or leave out unchanged when accumulating).
 */
export function embeddingGather(
  rec: Recorder,
  a: { table: EmbeddingTable; ids: GPUBuffer; out: GPUBuffer; n: number; accumulate?: boolean },
): void {
  const k = "embeddingGather";
  if (!(a.table instanceof EmbeddingTable)) throw new Error(`${k}: table must be an EmbeddingTable`);
  requireCount(k, "n", a.n);
  const cols = a.table.cols;
  requireElements(k, "ids", a.ids, a.n);
  requireElements(k, "out", a.out, a.n * cols);
  requireDistinct(k, ["ids", "out"], [a.ids, a.out]);
  const acc = a.accumulate ?? false;
  const total = a.n * cols;
  const { groups, stride } = linearGrid(rec, total, WG);
  const chunks = a.table.chunks;
  for (let ci = 0; ci < chunks.length; ci++) {
    const ch = chunks[ci];
    rec.dispatch({
      pipeline: rec.gpu.pipeline(`embedding-gather-${acc ? "acc" : "set"}`, () => GATHER_WGSL(acc)),
      buffers: [ch.buffer, a.ids, a.out],
      u32: [total, stride, cols, ch.rowStart, ch.rowCount, a.table.rows, ci === 0 ? 1 : 0],
      groups,
      label: k,
      shape: `${a.n}x${cols}`,
      flops: acc ? total / chunks.length : 0,
      bytes: 4 * (total * (acc ? 3 : 2) + a.n) / chunks.length,
    });
  }
}
