import { ok, strictEqual, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import {
  add,
  addInPlace,
  fill,
  linearGrid,
  maskColumns,
  maskRows,
  scale,
  sumRows,
} from "../kernels/elementwise.ts";
import {
  addInPlaceRef,
  addRef,
  maskColumnsRef,
  maskRowsRef,
  scaleRef,
  sumRowsRef,
} from "../kernels/reference/elementwise.ts";
import { assertClose, poison, randomF32 } from "./util.ts";

Deno.test("elementwise: add, addInPlace, scale, fill match the float64 reference", async () => {
  const gpu = await getGpu();
  for (const [n, seed] of [[1, 1], [63, 2], [1001, 3], [4100, 4], [5272, 5]] as const) {
    const a = randomF32(n, seed), b = randomF32(n, seed + 1), y0 = randomF32(n, seed + 2);
    const ab = gpu.upload(a), bb = gpu.upload(b), out = gpu.upload(poison(n));
    const yb = gpu.upload(y0), sb = gpu.upload(a), fb = gpu.upload(poison(n + 5));
    const rec = new Recorder(gpu);
    add(rec, { a: ab, b: bb, out, n });
    addInPlace(rec, { x: ab, y: yb, n, alpha: -0.75 });
    scale(rec, { x: sb, n, alpha: 3.5 });
    fill(rec, { x: fb, n: n + 2, value: 0.25 });
    fill(rec, { x: fb, n: 3, value: -2, offset: n + 2 });
    const got = await rec.read(out, n);
    assertClose(got, addRef(a, b), 1e-7, `add n=${n}`);
    assertClose(await gpu.read(yb, n), addInPlaceRef(a, y0, -0.75), 1e-7, `addInPlace n=${n}`);
    assertClose(await gpu.read(sb, n), scaleRef(a, 3.5), 1e-7, `scale n=${n}`);
    const want = new Float64Array(n + 5).fill(0.25);
    want.fill(-2, n + 2);
    assertClose(await gpu.read(fb, n + 5), want, 0, `fill n=${n}`);
    for (const x of [ab, bb, out, yb, sb, fb]) x.destroy();
  }
});

Deno.test("elementwise: sumRows, maskColumns, maskRows match the float64 reference on ragged shapes", async () => {
  const gpu = await getGpu();
  for (
    const [rows, cols, ldx, seed] of [[1, 1, 1, 1], [5, 3, 3, 2], [37, 70, 75, 3], [130, 9, 9, 4]] as const
  ) {
    const x = randomF32(rows * ldx, seed);
    const dense = randomF32(rows * cols, seed + 1);
    const init = randomF32(cols, seed + 2);
    const mCols = Float32Array.from({ length: cols }, (_, j) => (j + seed) % 3 === 0 ? 0 : 1);
    const mRows = Float32Array.from({ length: rows }, (_, i) => (i + seed) % 2);
    const xb = gpu.upload(x), db = gpu.upload(dense), mcb = gpu.upload(mCols), mrb = gpu.upload(mRows);
    const sum = gpu.upload(poison(cols)), sumAcc = gpu.upload(init);
    const oc = gpu.upload(poison(rows * cols)), or = gpu.upload(poison(rows * cols));
    const rec = new Recorder(gpu);
    sumRows(rec, { x: xb, out: sum, rows, cols, ldx });
    sumRows(rec, { x: xb, out: sumAcc, rows, cols, ldx, accumulate: true });
    maskColumns(rec, { x: db, mask: mcb, out: oc, rows, cols });
    maskRows(rec, { x: db, mask: mrb, out: or, rows, cols });
    const what = `${rows}x${cols} ldx=${ldx}`;
    // fp32 sums of up to 130 terms of magnitude ≤ 1: error ≲ rows·ulp relative to the sum's scale
    assertClose(await rec.read(sum, cols), sumRowsRef(x, rows, cols, ldx), 1e-5, `sumRows ${what}`);
    assertClose(
      await gpu.read(sumAcc, cols),
      sumRowsRef(x, rows, cols, ldx, init),
      1e-5,
      `sumRows acc ${what}`,
    );
    const gc = await gpu.read(oc, rows * cols), gr = await gpu.read(or, rows * cols);
    assertClose(gc, maskColumnsRef(dense, mCols, rows, cols), 0, `maskColumns ${what}`);
    assertClose(gr, maskRowsRef(dense, mRows, rows, cols), 0, `maskRows ${what}`);
    for (const b of [xb, db, mcb, mrb, sum, sumAcc, oc, or]) b.destroy();
  }
});

Deno.test("elementwise: launches beyond 65535 workgroups use a 2-D grid and cover every element", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  const n = max * 64 + 100;
  const { groups, stride } = linearGrid(rec, n, 64);
  ok(groups[1] >= 2 && groups[0] * groups[1] * 64 >= n && stride === groups[0] * 64);
  const buf = gpu.upload(poison(n));
  fill(rec, { x: buf, n, value: 1.5 });
  const got = await rec.read(buf, n);
  let bad = 0;
  for (let i = 0; i < n; i++) if (got[i] !== 1.5) bad++;
  strictEqual(bad, 0, `elements not written by the 2-D grid`);
  buf.destroy();
});

Deno.test("elementwise: bad sizes and aliasing are rejected with the kernel named", async () => {
  const gpu = await getGpu();
  const a = gpu.buffer(16), b = gpu.buffer(16);
  const rec = new Recorder(gpu);
  throws(() => add(rec, { a, b, out: a, n: 4 }), /add: a and out must be different/);
  throws(() => add(rec, { a, b, out: gpu.buffer(8), n: 4 }), /add: buffer out has 8 bytes but 4 elements/);
  throws(() => fill(rec, { x: a, n: 3, value: 0, offset: 2 }), /fill: buffer x has 16 bytes but 5 elements/);
  throws(() => scale(rec, { x: a, n: 4, alpha: NaN }), /scale: alpha must be a finite number/);
  throws(
    () => sumRows(rec, { x: a, out: b, rows: 2, cols: 3, ldx: 2 }),
    /sumRows: ldx 2 is smaller than cols 3/,
  );
  throws(
    () => maskRows(rec, { x: a, mask: b, out: b, rows: 2, cols: 2 }),
    /maskRows: mask and out must be different/,
  );
  throws(
    () => addInPlace(rec, { x: a, y: b, n: 1.5 }),
    /addInPlace: the element count for x must be a non-negative integer/,
  );
});
