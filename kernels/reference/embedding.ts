/**
 * Float64 reference for `kernels/embedding.ts`: row gather from a table [rows, cols] by integer ids; ids
 * outside [0, rows) give a zero row (as the GPU kernel does).
 * @module
 */

/**
 * `out[i, :] = table[ids[i], :]` (plus `init[i, :]` when given, i.e. accumulate).
 *
 * @example
 * ```ts
 * const h = embeddingGatherRef(wordTable, vocab, hidden, tokenIds);
 * ```
 */
export function embeddingGatherRef(
  table: ArrayLike<number>,
  rows: number,
  cols: number,
  ids: ArrayLike<number>,
  init?: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(ids.length * cols);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const valid = Number.isInteger(id) && id >= 0 && id < rows;
    for (let c = 0; c < cols; c++) {
      out[i * cols + c] = (init ? init[i * cols + c] : 0) + (valid ? table[id * cols + c] : 0);
    }
  }
  return out;
}
