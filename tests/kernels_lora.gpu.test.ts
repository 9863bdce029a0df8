/**
 * Masked LoRA kernels vs the float64 reference (with lora_dropout from the shared RNG), exact zeros for dropped
 * columns of A / rows of B, the backward dropout mask equal to the forward's (`keepKey`), and the reference's
 * backward checked by finite differences.
 *
 * Error bound: relErr <= 1e-5 (sums of at most 130 products of values in [-1, 1), fp32 accumulation error about
 * sqrt(n)·2^-24 relative, plus the f32 rounding of 1/(1-p) and s).
 */
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import { LORA_SPLIT_COLS, LORA_SPLIT_ROWS, loraBackward, loraForward } from "../kernels/lora.ts";
import { loraBackwardRef, loraForwardRef, type LoraRefShape } from "../kernels/reference/lora.ts";
import { keepKey, KeyedRandom, Purpose } from "../kernels/rng.ts";
import { assertClose, poison, randomF32, randomF64 } from "./util.ts";

const TOL = 1e-5;

/** A 0/1 mask with about `rate` zeros (at least one zero and one one when n >= 2). */
function mask(n: number, seed: number, rate = 0.3): Float32Array {
  const r = new KeyedRandom([seed, Purpose.test, 99]);
  const m = new Float32Array(n);
  for (let i = 0; i < n; i++) m[i] = r.uniform() < rate ? 0 : 1;
  if (n >= 2) {
    m[0] = 0;
    m[n - 1] = 1;
  }
  return m;
}

interface Case extends LoraRefShape {
  accumulateGrads?: boolean;
  /** Rows per split of dA and dB (loraBackward's splitRows; default: the adapter's). */
  splitRows?: number;
  /** Input features per split of the down-projection (loraForward's splitCols; default: the adapter's). */
  splitCols?: number;
}

async function runCase(c: Case, seed: number): Promise<void> {
  const gpu = await getGpu();
  const { m, nIn, nOut, r } = c;
  const x = randomF32(m * nIn, seed), a = randomF32(r * nIn, seed + 1), b = randomF32(nOut * r, seed + 2);
  const mA = mask(nIn, seed + 3), mB = mask(nOut, seed + 4);
  const y0 = randomF32(m * nOut, seed + 5),
    dy = randomF32(m * nOut, seed + 6),
    dx0 = randomF32(m * nIn, seed + 7);
  const dA0 = c.accumulateGrads ? randomF32(r * nIn, seed + 8) : poison(r * nIn);
  const dB0 = c.accumulateGrads ? randomF32(nOut * r, seed + 9) : poison(nOut * r);
  const up = (d: Float32Array, label: string) => gpu.upload(d, label);
  const bx = up(x, "x"), ba = up(a, "A"), bb = up(b, "B"), bmA = up(mA, "mA"), bmB = up(mB, "mB");
  const bt = up(poison(m * r), "t"), by = up(y0, "y"), bdy = up(dy, "dy");
  const bdA = up(dA0, "dA"), bdB = up(dB0, "dB"), bdx = up(dx0, "dx");
  const rec = new Recorder(gpu);
  const ran: string[] = [];
  rec.observer = {
    onDispatch: (d) => void ran.push(`${d.label} ${d.shape}`),
    beforeFinish: () => {},
    afterSubmit: () => {},
  };
  const common = {
    ...{ m, nIn, nOut, r, scale: c.scale, dropout: c.dropout, dropKey: c.dropKey, rowsEvery: c.rowsEvery },
    ...{ x: bx, a: ba, b: bb, maskA: bmA, maskB: bmB, t: bt },
  };
  loraForward(rec, { ...common, y: by, splitCols: c.splitCols });
  loraBackward(rec, {
    ...common,
    dy: bdy,
    dA: bdA,
    dB: bdB,
    dx: bdx,
    accumulateGrads: c.accumulateGrads,
    splitRows: c.splitRows,
  });
  rec.submit();
  const [t, y, dA, dB, dx] = await Promise.all([
    gpu.read(bt, m * r),
    gpu.read(by, m * nOut),
    gpu.read(bdA, r * nIn),
    gpu.read(bdB, nOut * r),
    gpu.read(bdx, m * nIn),
  ]);
  const what = JSON.stringify(c);
  // The row splits that ran: dA and dB each as partial sums plus a summing kernel, or each in one pass.
  const splits = Math.ceil(m / Math.min(m, c.splitRows ?? (gpu.isCpu ? m : LORA_SPLIT_ROWS)));
  const sums = ran.filter((k) => /^lora-d[AB]sum /.test(k));
  const parts = ran.filter((k) => /^lora-d[AB] /.test(k)).map((k) => k.replace(/^\S+ /, ""));
  deepStrictEqual(sums.length, splits > 1 ? 2 : 0, `summing kernels of ${what}: ${ran.join(", ")}`);
  const shape = `${m}x${nIn}x${nOut}r${r}${splits > 1 ? `s${splits}` : ""}`;
  deepStrictEqual(parts, [shape, shape], `dA and dB of ${what}`);
  // The down-projection's column splits: its loop steps over texels of 4 features where nIn % 4 == 0.
  const cols = Math.min(nIn, c.splitCols ?? (gpu.isCpu ? nIn : LORA_SPLIT_COLS));
  const downSplits = nIn % 4 === 0 ? Math.ceil(nIn / 4 / Math.ceil(cols / 4)) : Math.ceil(nIn / cols);
  const down = ran.filter((k) => /^lora-down/.test(k));
  const downShape = `${m}x${nIn}x${nOut}r${r}`;
  deepStrictEqual(
    down.map((k) => k.replace(/^lora-down4? /, "lora-down ")),
    downSplits > 1
      ? [`lora-down ${downShape}s${downSplits}`, `lora-downsum ${downShape}`]
      : [`lora-down ${downShape}`],
    `down-projection of ${what}: ${ran.join(", ")}`,
  );
  const fwd = loraForwardRef(c, x, a, b, mA, mB, y0);
  assertClose(t, fwd.t, TOL, `t ${what}`);
  assertClose(y, fwd.y, TOL, `y ${what}`);
  // The backward uses the GPU's t (the reference's t agrees to TOL, checked above).
  const bwd = loraBackwardRef(c, dy, x, a, b, mA, mB, t);
  const acc = (base: Float32Array, add: Float64Array) =>
    add.map((v, i) => v + (c.accumulateGrads ? base[i] : 0));
  assertClose(dA, acc(dA0, bwd.dA), TOL, `dA ${what}`);
  assertClose(dB, acc(dB0, bwd.dB), TOL, `dB ${what}`);
  assertClose(dx, bwd.dx.map((v, i) => v + dx0[i]), TOL, `dx ${what}`);
  // Dropped entries: exactly zero gradient (or exactly unchanged when accumulating).
  for (let j = 0; j < nOut; j++) {
    if (mB[j] !== 0) continue;
    for (let q = 0; q < r; q++) {
      const want = c.accumulateGrads ? dB0[j * r + q] : 0;
      ok(dB[j * r + q] === want, `dB[${j},${q}] for a dropped row is ${dB[j * r + q]}, not exactly ${want}`);
    }
  }
  for (let col = 0; col < nIn; col++) {
    if (mA[col] !== 0) continue;
    for (let q = 0; q < r; q++) {
      const want = c.accumulateGrads ? dA0[q * nIn + col] : 0;
      ok(
        dA[q * nIn + col] === want,
        `dA[${q},${col}] for a dropped column is ${dA[q * nIn + col]}, not ${want}`,
      );
    }
    for (let i = 0; i < m; i++) {
      ok(
        dx[i * nIn + col] === dx0[i * nIn + col],
        `dx[${i},${col}] changed although column ${col} is dropped`,
      );
    }
  }
  for (const buf of [bx, ba, bb, bmA, bmB, bt, by, bdy, bdA, bdB, bdx]) buf.destroy();
}

/** lora_dropout cases shared by the one-pass and the split tests: nIn not a multiple of 4; rank 12, staged. */
const DROPOUT_NARROW: Case = {
  m: 33,
  nIn: 63,
  nOut: 5,
  r: 4,
  scale: 2,
  dropout: 0.1,
  dropKey: [11, Purpose.dropout, 3, 7],
};
const DROPOUT_RANK12: Case = {
  m: 21,
  nIn: 128,
  nOut: 64,
  r: 12,
  scale: 0.5,
  dropout: 0.2,
  dropKey: [5, Purpose.dropout, 9, 2],
};

Deno.test("lora: forward and backward match the float64 reference (masks, no dropout)", async () => {
  await runCase({ m: 7, nIn: 33, nOut: 20, r: 4, scale: 2 }, 1);
  await runCase({ m: 1, nIn: 5, nOut: 3, r: 1, scale: 0.5 }, 2);
  await runCase({ m: 7, nIn: 36, nOut: 20, r: 4, scale: 2 }, 6); // nIn % 4 == 0: the vec4 down-projection

  await runCase({ m: 65, nIn: 130, nOut: 67, r: 8, scale: 1 / 8, accumulateGrads: true }, 3);
  // r % 4 == 0 with nIn, nOut multiples of 64: the texture-staged down4T, dBT and dAT variants; m·r = 1040 fills
  // one whole row of the flat staging texture (1024 floats) and part of the next
  await runCase({ m: 130, nIn: 128, nOut: 64, r: 8, scale: 0.75 }, 7);
  await runCase({ m: 67, nIn: 64, nOut: 192, r: 4, scale: 1.25, accumulateGrads: true }, 8);
});

Deno.test("lora: forward and backward with lora_dropout from the shared RNG", async () => {
  await runCase(DROPOUT_NARROW, 4);
  await runCase({
    m: 9,
    nIn: 64,
    nOut: 65,
    r: 16,
    scale: 1.5,
    dropout: 0.5,
    dropKey: [0xffffffff, Purpose.dropout, 0, 1],
    accumulateGrads: true,
  }, 5);
  await runCase(DROPOUT_RANK12, 9);
  // x holding every 7th (3rd) row of a larger input: the [CLS] rows of a last layer
  await runCase({ ...DROPOUT_NARROW, rowsEvery: 7 }, 19);
  await runCase({ ...DROPOUT_RANK12, rowsEvery: 3 }, 20);
});

Deno.test("lora: sums over row and column splits (the GPU default) match the float64 reference", async () => {
  // dA and dB over row splits, t over column splits: splits that do not divide m or nIn (a short last split),
  // one row or column per split, every down-projection variant (scalar, vec4, texture-staged), the buffer-fed
  // and texture-staged dA and dB, accumulation into the gradients and lora_dropout.
  await runCase({ m: 7, nIn: 33, nOut: 20, r: 4, scale: 2, splitRows: 3, splitCols: 10 }, 11);
  await runCase({
    m: 5,
    nIn: 5,
    nOut: 3,
    r: 1,
    scale: 0.5,
    splitRows: 1,
    splitCols: 1,
    accumulateGrads: true,
  }, 12);
  await runCase({ m: 7, nIn: 36, nOut: 20, r: 4, scale: 2, splitRows: 2, splitCols: 5 }, 17);
  await runCase({ m: 130, nIn: 128, nOut: 64, r: 8, scale: 0.75, splitRows: 16, splitCols: 24 }, 13);
  await runCase({ m: 67, nIn: 64, nOut: 192, r: 4, scale: 1.25, splitRows: 32, accumulateGrads: true }, 14);
  await runCase({ ...DROPOUT_RANK12, splitRows: 4, splitCols: 32 }, 15);
  await runCase({ ...DROPOUT_NARROW, splitCols: 20 }, 18);
  await runCase({ ...DROPOUT_RANK12, splitRows: 5, splitCols: 32, rowsEvery: 4 }, 21);
  // splitRows >= m and splitCols >= nIn are one pass.
  await runCase({ m: 9, nIn: 64, nOut: 65, r: 8, scale: 1.5, splitRows: 100, splitCols: 64 }, 16);
});

Deno.test("lora: the backward dropout mask is the forward's (keepKey with the same key)", async () => {
  for (const rowsEvery of [1, 5]) await backwardMaskCase(rowsEvery);
});

/** dx's kept elements against keepKey at each element's place in the input whose every `rowsEvery`-th row x is. */
async function backwardMaskCase(rowsEvery: number): Promise<void> {
  const gpu = await getGpu();
  const m = 16, nIn = 40, nOut = 6, r = 2, p = 0.3;
  const dropKey: [number, number, number, number] = [5, Purpose.dropout, 9, 2];
  // All-ones masks and A = 1, B = 1, dy = 1: dx[i, c] = drop'(i, c) · s·nOut·r is nonzero exactly where kept.
  const ones = (n: number) => new Float32Array(n).fill(1);
  const bufs = {
    x: gpu.upload(randomF32(m * nIn, 30), "x"),
    a: gpu.upload(ones(r * nIn), "A"),
    b: gpu.upload(ones(nOut * r), "B"),
    maskA: gpu.upload(ones(nIn), "mA"),
    maskB: gpu.upload(ones(nOut), "mB"),
    t: gpu.upload(poison(m * r), "t"),
    dy: gpu.upload(ones(m * nOut), "dy"),
    dA: gpu.upload(poison(r * nIn), "dA"),
    dB: gpu.upload(poison(nOut * r), "dB"),
    dx: gpu.upload(new Float32Array(m * nIn), "dx"),
  };
  const rec = new Recorder(gpu);
  loraBackward(rec, { ...bufs, m, nIn, nOut, r, scale: 1, dropout: p, dropKey, rowsEvery });
  const dx = await rec.read(bufs.dx, m * nIn);
  const keptGpu = Array.from(dx, (v) => v !== 0);
  const place = (i: number) => Math.floor(i / nIn) * rowsEvery * nIn + i % nIn;
  const keptTs = Array.from({ length: m * nIn }, (_, i) => keepKey(p, ...dropKey, place(i)));
  deepStrictEqual(keptGpu, keptTs);
  const kept = keptTs.filter((k) => k).length;
  ok(kept > 0.55 * m * nIn && kept < 0.85 * m * nIn, `kept fraction ${kept / (m * nIn)} far from 0.7`);
  const want = Math.fround(1 / (1 - p)) * nOut * r;
  for (let i = 0; i < m * nIn; i++) if (keptTs[i]) assertClose([dx[i]], [want], TOL, `dx[${i}]`);
  for (const buf of Object.values(bufs)) buf.destroy();
}

Deno.test("lora reference: backward equals central finite differences of the forward", () => {
  const s: LoraRefShape = { m: 3, nIn: 4, nOut: 5, r: 2, scale: 1.7, dropout: 0.4, dropKey: [1, 2, 3, 4] };
  const x = randomF64(s.m * s.nIn, 40), a = randomF64(s.r * s.nIn, 41), b = randomF64(s.nOut * s.r, 42);
  const mA = Float64Array.from([1, 0, 1, 1]), mB = Float64Array.from([1, 1, 0, 1, 1]);
  const g = randomF64(s.m * s.nOut, 43); // loss L = Σ y ⊙ g, so dL/dy = g
  const y0 = new Float64Array(s.m * s.nOut);
  const loss = (xx: Float64Array, aa: Float64Array, bb: Float64Array) =>
    loraForwardRef(s, xx, aa, bb, mA, mB, y0).y.reduce((acc, v, i) => acc + v * g[i], 0);
  const { t } = loraForwardRef(s, x, a, b, mA, mB, y0);
  const grads = loraBackwardRef(s, g, x, a, b, mA, mB, t);
  const h = 1e-6;
  for (const [name, arr, grad] of [["x", x, grads.dx], ["A", a, grads.dA], ["B", b, grads.dB]] as const) {
    const fd = new Float64Array(arr.length);
    for (let i = 0; i < arr.length; i++) {
      const plus = Float64Array.from(arr), minus = Float64Array.from(arr);
      plus[i] += h;
      minus[i] -= h;
      const args = (v: Float64Array) =>
        [name === "x" ? v : x, name === "A" ? v : a, name === "B" ? v : b] as const;
      fd[i] = (loss(...args(plus)) - loss(...args(minus))) / (2 * h);
    }
    assertClose(grad, fd, 1e-7, `finite differences of d${name}`);
    // Not vacuous: some gradient entries are nonzero and some (masked) are exactly zero.
    ok(grad.some((v) => Math.abs(v) > 1e-3), `d${name} is all (near) zero`);
  }
  strictEqual(grads.dA[1], 0); // column 1 of A dropped
  strictEqual(grads.dB[2 * s.r], 0); // row 2 of B dropped
});

Deno.test("lora: bad arguments give clear errors", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const buf = (n: number, label: string) => gpu.buffer(n * 4, label);
  const f = {
    x: buf(12, "x"),
    a: buf(8, "A"),
    b: buf(6, "B"),
    maskA: buf(4, "mA"),
    maskB: buf(3, "mB"),
    t: buf(6, "t"),
    y: buf(9, "y"),
  };
  const dims = { m: 3, nIn: 4, nOut: 3, r: 2, scale: 1 };
  throws(
    () => loraForward(rec, { ...f, ...dims, nIn: 5 }),
    /loraForward: buffer x \(x\) has 12 f32 elements, needs 15/,
  );
  throws(() => loraForward(rec, { ...f, ...dims, r: 0 }), /loraForward: r must be a positive integer/);
  throws(() => loraForward(rec, { ...f, ...dims, r: 65 }), /MAX_LORA_RANK/);
  throws(() => loraForward(rec, { ...f, ...dims, dropout: 0.1 }), /needs dropKey/);
  throws(() => loraForward(rec, { ...f, ...dims, dropout: 1 }), /dropout must be in \[0, 1\)/);
  throws(() => loraForward(rec, { ...f, ...dims, t: f.y }), /output y must not be the same buffer as t/);
  for (const splitCols of [0, -4, 2.5]) {
    throws(
      () => loraForward(rec, { ...f, ...dims, splitCols }),
      new RegExp(`loraForward: splitCols must be a positive integer, got ${splitCols}`),
    );
  }
  const g = { dy: buf(9, "dy"), dA: buf(8, "dA"), dB: buf(6, "dB") };
  for (const splitRows of [0, 1.5]) {
    throws(
      () => loraBackward(rec, { ...f, ...g, ...dims, splitRows }),
      new RegExp(`loraBackward: splitRows must be a positive integer, got ${splitRows}`),
    );
  }
  strictEqual(rec.dispatchCount, 0);
  for (const b of [...Object.values(f), ...Object.values(g)]) b.destroy();
});
