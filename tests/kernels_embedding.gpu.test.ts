import { strictEqual, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import { embeddingGather, EmbeddingTable } from "../kernels/embedding.ts";
import { embeddingGatherRef } from "../kernels/reference/embedding.ts";
import { assertClose, poison, randomF32 } from "./util.ts";

Deno.test("embedding: chunked and unchunked gathers match the reference, out-of-range ids give zeros", async () => {
  const gpu = await getGpu();
  const rows = 23, cols = 13;
  const data = randomF32(rows * cols, 1);
  const ids = Int32Array.from([
    0,
    22,
    5,
    6,
    7,
    11,
    12,
    21,
    3,
    -1,
    23,
    1000,
    2147483647,
    -2147483648,
    17,
    5,
    0,
  ]);
  const n = ids.length;
  const valid = Array.from(ids, (id) => id >= 0 && id < rows);
  for (const maxChunkRows of [undefined, 1, 5, 7, 22]) {
    const table = EmbeddingTable.create(gpu, data, rows, cols, "test table", maxChunkRows);
    strictEqual(table.chunks.length, maxChunkRows ? Math.ceil(rows / maxChunkRows) : 1);
    const idb = gpu.upload(ids);
    const init = randomF32(n * cols, 2);
    const out = gpu.upload(poison(n * cols)), outAcc = gpu.upload(init);
    const rec = new Recorder(gpu);
    embeddingGather(rec, { table, ids: idb, out, n });
    embeddingGather(rec, { table, ids: idb, out: outAcc, n, accumulate: true });
    const got = await rec.read(out, n * cols);
    const gotAcc = await gpu.read(outAcc, n * cols);
    const what = `maxChunkRows=${maxChunkRows}`;
    // a gather copies values: exact
    assertClose(got, embeddingGatherRef(data, rows, cols, ids), 0, `gather ${what}`);
    assertClose(gotAcc, embeddingGatherRef(data, rows, cols, ids, init), 1e-7, `gather accumulate ${what}`);
    for (let i = 0; i < n; i++) {
      if (!valid[i]) { for (let c = 0; c < cols; c++) strictEqual(got[i * cols + c], 0, `id ${ids[i]} row`); }
    }
    table.destroy();
    idb.destroy();
    out.destroy();
    outAcc.destroy();
  }
});

Deno.test("embedding: bad tables and sizes are rejected", async () => {
  const gpu = await getGpu();
  throws(
    () => EmbeddingTable.create(gpu, new Float32Array(10), 3, 4, "word"),
    /EmbeddingTable word: data has 10/,
  );
  throws(
    () => EmbeddingTable.create(gpu, new Float32Array(12), 3, 4, "word", 0),
    /maxChunkRows must be at least 1/,
  );
  const table = EmbeddingTable.create(gpu, new Float32Array(12), 3, 4);
  const rec = new Recorder(gpu);
  const ids = gpu.buffer(8), out = gpu.buffer(4 * 4);
  throws(() => embeddingGather(rec, { table, ids, out, n: 2 }), /embeddingGather: buffer out has 16 bytes/);
  throws(() => embeddingGather(rec, { table, ids, out, n: 3 }), /embeddingGather: buffer ids has 8 bytes/);
  table.destroy();
});
