/**
 * GEMM kernel vs its float64 reference: ragged shapes, every transpose combination, strides, offsets, batching,
 * alpha, accumulate and bias. Outputs are poisoned with NaN (or, for accumulate, set to known random values)
 * before each run; elements the kernel must not touch are checked to be untouched.
 *
 * Both kernel families are covered: the buffer-fed kernels and the texture-fed one (forced with
 * `path: "texture"`), unbatched and batched, including batches split into several texture chunks.
 *
 * Error bound: relErr (max abs error / max |reference|) <= 1e-5. Inputs are uniform in [-1, 1) and k <= 130
 * (one chunking case has k = 1201), so fp32 accumulation error is about sqrt(k)·2^-24 (< 3e-6 at k = 1201)
 * relative to |C| ~ sqrt(k/9): under 1e-5.
 */
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { getGpu, Gpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/recorder.ts";
import {
  autoTexturePath,
  gemm,
  type GemmArgs,
  gemmAutoOptions,
  type GemmTile,
  GPU_GEMM_TILE,
  NARROW_TEXTURE_TILE,
  SMALL_BATCHED_TEXTURE_TILE,
  TEXTURE_TILE_COLS,
  textureTileFor,
} from "../kernels/gemm.ts";
import {
  canCopyOperand,
  copyModeB,
  fitTileCols,
  fitTileRows,
  type PackedOperand,
  TEXTURE_GEMM_TILE,
  textureGemmChunk,
  type TextureGemmTile,
} from "../kernels/gemm_texture.ts";
import {
  BLOCKED_SHARED_GEMM_TILE,
  BLOCKED_SMALL_SHARED_GEMM_TILE,
  checkSharedTile,
  LARGE_SHARED_GEMM_TILE,
  SHARED_GEMM_TILE,
  type SharedGemmTile,
} from "../kernels/gemm_shared.ts";
import { PackedWeightCache } from "../kernels/packed_weights.ts";
import { cachedTextureBytes } from "../kernels/texture_stage.ts";
import { gemmRef, type GemmRefArgs } from "../kernels/reference/gemm.ts";
import { assertClose, poison, randomF32 } from "./util.ts";

const TOL = 1e-5;

type Case = GemmRefArgs & {
  bias?: boolean;
  slack?: number;
  tile?: GemmTile;
  path?: GemmArgs["path"];
  textureTile?: TextureGemmTile;
  sharedTile?: SharedGemmTile;
  /** Dispatches the call must record (e.g. 2 per chunk when op(A) is copied instead of packed). */
  dispatches?: number;
  /** The kernels the call must run, in order: their pipeline keys up to the first ":" joined by ",". */
  kernels?: string;
  /** The workgroup height (wy) of the texture-fed GEMM the call must run. */
  textureWy?: number;
  /** The columns per invocation (tn) of the texture-fed GEMM the call must run. */
  textureTn?: number;
};

/** Elements one operand spans for all batch elements (plus slack). */
function extent(rows: number, cols: number, ld: number, off: number, c: Case, s?: [number, number]): number {
  const [o, i] = c.batch ?? [1, 1];
  const st = s ?? [0, 0];
  // At least one element: writeBuffer of zero bytes panics Deno 2.9.6's WebGPU (queue.rs unwrap on None).
  return Math.max(1, off + (o - 1) * st[0] + (i - 1) * st[1] + (rows - 1) * ld + cols + (c.slack ?? 0));
}

async function runCase(c: Case, seed: number, on?: Gpu): Promise<Float32Array> {
  const gpu = on ?? await getGpu();
  const { m, n, k } = c;
  const transA = c.transA ?? false, transB = c.transB ?? false;
  const lda = c.lda ?? (transA ? m : k), ldb = c.ldb ?? (transB ? k : n), ldc = c.ldc ?? n;
  const lenA = transA
    ? extent(k, m, lda, c.offA ?? 0, c, c.strideA)
    : extent(m, k, lda, c.offA ?? 0, c, c.strideA);
  const lenB = transB
    ? extent(n, k, ldb, c.offB ?? 0, c, c.strideB)
    : extent(k, n, ldb, c.offB ?? 0, c, c.strideB);
  const lenC = extent(m, n, ldc, c.offC ?? 0, c, c.strideC);
  const a = randomF32(lenA, seed);
  const b = randomF32(lenB, seed + 1);
  const bias = c.bias ? randomF32(n, seed + 2) : undefined;
  const c0 = c.accumulate ? randomF32(lenC, seed + 3) : poison(lenC);
  const want = gemmRef(c, a, b, Float64Array.from(c0), bias);
  // Which elements of C the GEMM addresses.
  const addressed = new Uint8Array(lenC);
  const [outer, inner] = c.batch ?? [1, 1];
  const sC = c.strideC ?? [0, 0];
  for (let z = 0; z < outer * inner; z++) {
    const o = (c.offC ?? 0) + Math.floor(z / inner) * sC[0] + (z % inner) * sC[1];
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) addressed[o + i * ldc + j] = 1;
  }
  const bufA = gpu.upload(a, "A"), bufB = gpu.upload(b, "B"), bufC = gpu.upload(c0, "C");
  const bufBias = bias ? gpu.upload(bias, "bias") : undefined;
  const rec = new Recorder(gpu);
  const { dispatches, kernels, textureWy, textureTn, ...shape } = c;
  const ran: string[] = [];
  if (kernels !== undefined || textureWy !== undefined || textureTn !== undefined) {
    rec.observer = {
      onDispatch: (d) => void ran.push(d.pipeline.label),
      beforeFinish: () => {},
      afterSubmit: () => {},
    };
  }
  const args: GemmArgs = { ...shape, a: bufA, b: bufB, c: bufC, bias: bufBias };
  gemm(rec, args);
  if (dispatches !== undefined) {
    strictEqual(rec.dispatchCount, dispatches, `dispatches of ${JSON.stringify(c)}`);
  }
  const got = await rec.read(bufC, lenC);
  if (kernels !== undefined) {
    strictEqual(ran.map((l) => l.split(":")[0]).join(","), kernels, `kernels of ${JSON.stringify(c)}`);
  }
  // The texture GEMM's pipeline label is gemm-tex:wx…:wy…:tm…:tn…: check the fields the case names.
  const tex = ran.filter((l) => l.startsWith("gemm-tex:"));
  for (const [want, at, name] of [[textureWy, 2, "wy"], [textureTn, 4, "tn"]] as const) {
    if (want === undefined) continue;
    deepStrictEqual(
      tex.map((l) => l.split(":")[at]),
      [`${name}${want}`],
      `texture ${name} of ${JSON.stringify(c)}`,
    );
  }
  const gotAddr: number[] = [], wantAddr: number[] = [];
  for (let i = 0; i < lenC; i++) {
    if (addressed[i]) {
      gotAddr.push(got[i]);
      wantAddr.push(want[i]);
    } else {
      // Untouched: bit-identical to the initial contents (NaN stays NaN).
      ok(Object.is(got[i], c0[i]), `element ${i} outside C's blocks was written (${got[i]} vs ${c0[i]})`);
    }
  }
  assertClose(gotAddr, wantAddr, TOL, `gemm ${JSON.stringify(c)}`);
  for (const buf of [bufA, bufB, bufC, bufBias]) buf?.destroy();
  return got;
}

Deno.test("gemm: ragged shapes, all transpose combinations", async () => {
  const ms = [1, 7, 33, 65], ns = [1, 5, 64, 67], ks = [1, 3, 63, 130];
  let seed = 100;
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      // A Latin-square walk over the shape lists: every m, n and k value appears with each transpose combo.
      for (let i = 0; i < 4; i++) {
        const m = ms[i], n = ns[(i + 1 + +transA) % 4], k = ks[(i + 2 + +transB) % 4];
        await runCase({ m, n, k, transA, transB }, seed += 10);
      }
    }
  }
  await runCase({ m: 65, n: 67, k: 130 }, 7);
  await runCase({ m: 65, n: 67, k: 130, transA: true, transB: true }, 8);
});

Deno.test("gemm: leading dimensions, offsets, alpha, bias and accumulate", async () => {
  await runCase({ m: 33, n: 5, k: 63, lda: 70, ldb: 9, ldc: 12, offA: 3, offB: 11, offC: 5 }, 1);
  await runCase({ m: 7, n: 67, k: 3, transA: true, lda: 10, offA: 2, alpha: -0.37, bias: true }, 2);
  await runCase({ m: 65, n: 64, k: 130, transB: true, ldb: 131, ldc: 70, accumulate: true, bias: true }, 3);
  await runCase({
    m: 1,
    n: 5,
    k: 63,
    transA: true,
    transB: true,
    lda: 4,
    ldb: 64,
    alpha: 2.5,
    accumulate: true,
  }, 4);
  await runCase({ m: 9, n: 13, k: 0, bias: true, alpha: 3 }, 5); // k = 0: C = bias
  await runCase({ m: 9, n: 13, k: 0, accumulate: true }, 6); // k = 0, accumulate: C unchanged
});

/** Element offsets into A, B and C, a negative alpha, a bias and accumulation: every epilogue path at once. */
const OFFSETS_AND_EPILOGUE = { offA: 3, offB: 5, offC: 2, alpha: -0.6, bias: true, accumulate: true };

/**
 * Attention scores as a batched product: Q, K of [batch·seq, heads·d] with heads of width d, S[b, h] = alpha ·
 * Q_bh K_bhᵀ into [batch, heads, seq, seq].
 */
function scoresCase(batch: number, heads: number, seq: number, d: number, alpha = 1 / Math.sqrt(d)): Case {
  const hidden = heads * d, tok: [number, number] = [seq * hidden, d];
  return {
    m: seq,
    n: seq,
    k: d,
    transB: true,
    lda: hidden,
    ldb: hidden,
    alpha,
    batch: [batch, heads],
    strideA: tok,
    strideB: tok,
    strideC: [heads * seq * seq, seq * seq],
  };
}

/**
 * Attention's context as a batched product: P [batch, heads, seq, seq] times V of [batch·seq, heads·d] with heads
 * of width d, C[b, :, h·d:(h+1)·d] = P_bh V_bh into a strided [batch·seq, heads·d] output.
 */
function contextCase(batch: number, heads: number, seq: number, d: number): Case {
  const hidden = heads * d, tok: [number, number] = [seq * hidden, d];
  return {
    m: seq,
    n: d,
    k: seq,
    ldb: hidden,
    ldc: hidden,
    batch: [batch, heads],
    strideA: [heads * seq * seq, seq * seq],
    strideB: tok,
    strideC: tok,
  };
}

Deno.test("gemm: two-level batching as in attention (per batch, per head)", async () => {
  const batch = 2, heads = 3, seq = 7, d = 5;
  await runCase(scoresCase(batch, heads, seq, d), 20);
  await runCase(contextCase(batch, heads, seq, d), 21);
  // Batched with transA, accumulate and offsets.
  await runCase({
    m: 6,
    n: 9,
    k: 33,
    transA: true,
    offA: 1,
    offB: 2,
    offC: 3,
    accumulate: true,
    batch: [3, 2],
    strideA: [500, 200],
    strideB: [700, 300],
    strideC: [130, 60],
  }, 22);
});

Deno.test("gemm: vec4 path (op(A) = A, k and A/B strides multiples of 4) on ragged m and n", async () => {
  // These take the vec4 kernel (tiles of 64×128 on CPU adapters): m and n still do not divide the tile.
  let seed = 300;
  for (const transB of [false, true]) {
    for (const [m, n, k] of [[1, 5, 4], [7, 130, 64], [65, 67, 132], [66, 1, 8], [130, 129, 28]]) {
      // Without transB, ldb rounded up to a multiple of 4 (and slack for the last row's last vec4) keeps it vec4.
      const ldb = transB ? k : Math.ceil(n / 4) * 4;
      await runCase({ m, n, k, transB, ldb, slack: transB ? 0 : 3 }, seed += 10);
    }
    await runCase({
      m: 33,
      n: 19,
      k: 36,
      transB,
      lda: 40,
      ldb: transB ? 44 : 24,
      ldc: 21,
      offA: 8,
      offB: 4,
      offC: 3,
    }, ++seed);
    await runCase({ m: 9, n: 70, k: 12, transB, alpha: 0.7, bias: true, accumulate: true }, ++seed);
  }
  // Attention with head width 8: batched, strided, vec4 path.
  const batch = 2, heads = 2, seq = 9, d = 8, hidden = heads * d;
  await runCase({
    m: seq,
    n: seq,
    k: d,
    transB: true,
    lda: hidden,
    ldb: hidden,
    alpha: 1 / Math.sqrt(d),
    batch: [batch, heads],
    strideA: [seq * hidden, d],
    strideB: [seq * hidden, d],
    strideC: [heads * seq * seq, seq * seq],
  }, 400);
  await runCase({
    m: seq,
    n: d,
    k: 12,
    ldb: hidden,
    ldc: hidden,
    lda: 12,
    batch: [batch, heads],
    strideA: [heads * seq * 12, seq * 12],
    strideB: [12 * hidden, d],
    strideC: [seq * hidden, d],
  }, 401);
});

Deno.test("gemm: the GPU adapters' tile (and a small odd one) give the same results", async () => {
  // The GPU tile is exercised on whatever adapter runs the tests, so its generated code is checked here too.
  // (Few cases: every new tile/transpose/bias/accumulate combination is a pipeline compile, slow on llvmpipe.)
  let seed = 500;
  for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]]) {
    await runCase(
      { m: 70, n: 37, k: 20, transA, transB, tile: GPU_GEMM_TILE, bias: true, accumulate: true },
      ++seed,
    );
  }
  const odd = { wx: 4, wy: 2, tm: 3, tn: 8 };
  await runCase({ m: 37, n: 70, k: 20, transB: true, tile: odd, bias: true, accumulate: true }, ++seed);
  await runCase({ m: 37, n: 70, k: 13, transA: true, tile: odd, bias: true, accumulate: true }, ++seed);
});

/**
 * The workgroup-memory kernel's cases for each of `tiles`, forced: ragged m, n, k against the blocks and k-steps
 * (k = 3, 37, 130), every transpose, strides, offsets, alpha, bias, accumulate, k = 0 and two-level batching.
 * On CPU adapters (llvmpipe compiles these slowly) only `odd` runs every case, the others one. Returns the
 * last seed used.
 */
async function sharedTileCases(gpu: Gpu, tiles: SharedGemmTile[], odd: SharedGemmTile, seed: number) {
  const all: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];
  const path = "shared" as const;
  for (const sharedTile of tiles) {
    const combos = !gpu.isCpu || sharedTile === odd ? all : [all[1]];
    for (const [transA, transB] of combos) {
      await runCase({ m: 70, n: 133, k: 37, transA, transB, path, sharedTile, dispatches: 1 }, ++seed);
    }
    if (gpu.isCpu && sharedTile !== odd) continue;
    await runCase({ m: 129, n: 5, k: 130, transB: true, path, sharedTile }, ++seed);
    await runCase({
      m: 33,
      n: 67,
      k: 3,
      transA: true,
      lda: 40,
      ldb: 70,
      ldc: 71,
      ...OFFSETS_AND_EPILOGUE,
      path,
      sharedTile,
    }, ++seed);
    await runCase({ m: 9, n: 13, k: 0, bias: true, alpha: 3, path, sharedTile }, ++seed);
    // Q·Kᵀ per (batch, head) with heads of width 16 inside a 48-wide hidden, seq 19.
    await runCase({ ...scoresCase(2, 3, 19, 16, 0.25), path, sharedTile, dispatches: 1 }, ++seed);
  }
  return seed;
}

Deno.test("gemm: blocked workgroup-memory kernel (vec4 reads, k-major staging, prefetch), forced", async () => {
  // The same cases as the strided kernel's test below. A small odd tile (8 invocations, 8 × 32 blocks, k-steps
  // of 4, so that k = 3, 37, 130 end inside a step and the prefetch's last step loads nothing) runs every case
  // on every adapter; on GPU adapters both blocked presets too, on CPU adapters the 128 × 128 one on the
  // forward projection's layout (llvmpipe compiles each variant for seconds).
  const gpu = await getGpu();
  const odd: SharedGemmTile = { wx: 4, wy: 2, tm: 4, tn: 8, bk: 4, blocked: true };
  const tiles = gpu.isCpu
    ? [odd, BLOCKED_SHARED_GEMM_TILE]
    : [odd, BLOCKED_SHARED_GEMM_TILE, BLOCKED_SMALL_SHARED_GEMM_TILE];
  let seed = await sharedTileCases(gpu, tiles, odd, 950);
  // The pipeline cache tells the blocked kernel from the strided one of the same dimensions: on a Gpu of its
  // own (its own pipeline cache), the second runs a kernel of its own (both compute the same values, so only
  // the count can tell a shared key).
  const own = new Gpu(gpu.device, gpu.info, { isCpu: gpu.isCpu });
  const strided: SharedGemmTile = { ...odd, blocked: false };
  await runCase({ m: 17, n: 40, k: 9, transB: true, path: "shared", sharedTile: strided }, ++seed, own);
  const after = own.pipelineCount;
  await runCase({ m: 17, n: 40, k: 9, transB: true, path: "shared", sharedTile: odd }, ++seed, own);
  strictEqual(own.pipelineCount, after + 1, "the blocked tile compiled a kernel of its own");
  throws(() => checkSharedTile({ ...odd, tm: 2 }, gpu.limits), /tm a multiple of 4/);
});

Deno.test("gemm: workgroup-memory path (GPU adapters' default), forced, for every tile", async () => {
  // Ragged m, n, k against each tile's blocks and k-steps (k = 3, 130, 37 are not multiples of 8 or 16), every
  // transpose, strides, offsets, alpha, bias, accumulate, k = 0 and two-level batching.
  // On CPU adapters (llvmpipe compiles these slowly: ~70 s cold for every tile) the odd tile alone runs every
  // case and the default tile one; the same generator makes all three, and a GPU runs them all.
  const gpu = await getGpu();
  const odd: SharedGemmTile = { wx: 4, wy: 8, tm: 2, tn: 4, bk: 4 };
  const tiles = gpu.isCpu ? [SHARED_GEMM_TILE, odd] : [SHARED_GEMM_TILE, LARGE_SHARED_GEMM_TILE, odd];
  let seed = await sharedTileCases(gpu, tiles, odd, 900);
  // "auto" takes the strided kernel on GPU adapters only (the texture-fed kernel on CPU adapters at this size).
  const kernels = gpu.isCpu ? "gemm-tex-pack,gemm-tex-pack,gemm-tex" : "gemm-shared";
  await runCase({ m: 65, n: 67, k: 130, kernels }, ++seed);
});

Deno.test("gemm: texture-fed path (CPU adapters' large products), forced on ragged shapes", async () => {
  // Every transpose combination, with m, n and k not multiples of 4 nor of the 128×64 tile, strides, offsets.
  let seed = 600;
  for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]]) {
    for (const [m, n, k] of [[1, 1, 1], [7, 5, 3], [130, 67, 33], [65, 129, 130]]) {
      await runCase({ m, n, k, transA, transB, path: "texture" }, seed += 10);
    }
    await runCase({
      m: 37,
      n: 70,
      k: 13,
      transA,
      transB,
      lda: transA ? 41 : 15,
      ldb: transB ? 17 : 73,
      ldc: 75,
      ...OFFSETS_AND_EPILOGUE,
      path: "texture",
    }, ++seed);
  }
  // An odd tile, and the texture caches reused (and grown) between products of different sizes.
  const odd = { wx: 4, wy: 2, tm: 3, tn: 8 };
  await runCase({ m: 37, n: 70, k: 21, transB: true, bias: true, path: "texture", textureTile: odd }, ++seed);
  await runCase({ m: 300, n: 20, k: 9, transA: true, path: "texture" }, ++seed);
  // The narrow tile of LoRA's rank-wide products (n <= 16), forced and as "auto" picks it on CPU adapters
  // (300×8×70 >= TEXTURE_GEMM_MIN_WORK: two packings and the GEMM; one buffer kernel on GPUs).
  for (const [transA, transB] of [[false, false], [true, true]]) {
    await runCase(
      { m: 45, n: 5, k: 19, transA, transB, path: "texture", textureTile: NARROW_TEXTURE_TILE },
      ++seed,
    );
  }
  const gpu = await getGpu();
  ok(autoTexturePath(true, 300, 8, 70) && !autoTexturePath(false, 300, 8, 70));
  // Small products from TEXTURE_GEMM_MIN_WORK on, however few rows: a pooler's 8×384×384, the head's 8×2×384.
  ok(
    autoTexturePath(true, 8, 384, 384) && autoTexturePath(true, 8, 2, 384) &&
      autoTexturePath(true, 1, 64, 64),
  );
  ok(
    !autoTexturePath(true, 4, 4, 4) && !autoTexturePath(true, 2, 8, 255) &&
      !autoTexturePath(false, 8, 2, 384),
  );
  await runCase({ m: 300, n: 8, k: 70, alpha: 0.5, accumulate: true, dispatches: gpu.isCpu ? 3 : 1 }, ++seed);
  await runCase({ m: 300, n: 70, k: 8, transB: true, dispatches: gpu.isCpu ? 3 : 1 }, ++seed);
  await runCase({ m: 8, n: 2, k: 383, transB: true, bias: true, dispatches: gpu.isCpu ? 3 : 1 }, ++seed);
  await runCase({ m: 3, n: 130, k: 33, transA: true, dispatches: gpu.isCpu ? 3 : 1 }, ++seed);
  await runCase({ m: 4, n: 4, k: 4, dispatches: 1 }, ++seed);
});

Deno.test("gemm: the texture tile's workgroup height is fitted to m, with the same bits as the tall tile", async () => {
  // fitTileRows: the tallest of wy, wy/2, …, 1 padding m by at most 1/16, else 1.
  for (const [m, wy] of [[1024, 8], [256, 8], [1600, 8], [192, 4], [96, 2], [208, 1], [200, 1], [130, 1]]) {
    deepStrictEqual(fitTileRows(TEXTURE_GEMM_TILE, m), { ...TEXTURE_GEMM_TILE, wy }, `m ${m}`);
  }
  deepStrictEqual(fitTileRows(NARROW_TEXTURE_TILE, 300), { ...NARROW_TEXTURE_TILE, wy: 2 });
  deepStrictEqual(fitTileRows(SMALL_BATCHED_TEXTURE_TILE, 52), { ...SMALL_BATCHED_TEXTURE_TILE, wy: 1 });
  deepStrictEqual(fitTileRows({ wx: 8, wy: 6, tm: 4, tn: 4 }, 36), { wx: 8, wy: 3, tm: 4, tn: 4 });
  const same = fitTileRows(TEXTURE_GEMM_TILE, 512);
  ok(same === TEXTURE_GEMM_TILE, "a tile that fits is returned as is");

  // The fitted tile runs (the texture path without an explicit tile, as "auto" takes it on CPU adapters), is
  // right against the reference, and gives the bits of the unfitted tile forced on the same inputs.
  const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
  let seed = 2000;
  const pair = (a: number): [number, number] => [3 * a, a];
  const batch = { batch: [2, 3] as [number, number], strideA: pair(52 * 32), strideB: pair(52 * 32) };
  const cases: [Case, TextureGemmTile, number][] = [
    [{ m: 256, n: 70, k: 33, transB: true }, TEXTURE_GEMM_TILE, 8],
    [{ m: 192, n: 70, k: 33, transB: true, bias: true }, TEXTURE_GEMM_TILE, 4],
    [{ m: 96, n: 67, k: 130, transA: true, accumulate: true, alpha: 0.5 }, TEXTURE_GEMM_TILE, 2],
    [{ m: 208, n: 70, k: 33, transB: true }, TEXTURE_GEMM_TILE, 1],
    [{ m: 300, n: 8, k: 70 }, NARROW_TEXTURE_TILE, 2],
    [
      { m: 52, n: 52, k: 32, transB: true, ...batch, strideC: pair(52 * 52) },
      SMALL_BATCHED_TEXTURE_TILE,
      1,
    ],
  ];
  for (const [c, tall, wy] of cases) {
    seed += 10;
    const fitted = await runCase({ ...c, path: "texture", textureWy: wy }, seed);
    const forced = await runCase({ ...c, path: "texture", textureTile: tall, textureWy: tall.wy }, seed);
    const a = bits(fitted), b = bits(forced);
    const diff = a.findIndex((v, i) => v !== b[i]);
    strictEqual(diff, -1, `${JSON.stringify(c)}: element ${diff} differs between wy ${wy} and ${tall.wy}`);
  }
});

Deno.test("gemm: the texture tile's columns per invocation are fitted to n, with the same bits as 8 columns", async () => {
  // fitTileCols: the widest of the listed tn padding n by at most 1/16, else the least padding (wider on ties).
  const cols16 = [16, 8];
  for (
    const [n, tn] of [[768, 16], [3072, 16], [384, 16], [128, 16], [120, 16], [250, 16], [64, 8], [136, 8]]
  ) {
    strictEqual(fitTileCols(TEXTURE_GEMM_TILE, n, cols16).tn, tn, `n ${n}`);
  }
  strictEqual(
    fitTileCols(TEXTURE_GEMM_TILE, 70, cols16).tn,
    16,
    "n 70: both pad to 128 columns, the wider wins",
  );
  strictEqual(fitTileCols(TEXTURE_GEMM_TILE, 384, [32, 16, 8]).tn, 16, "384 = 1.5 blocks of 256 columns");
  strictEqual(fitTileCols(TEXTURE_GEMM_TILE, 768, [32, 16, 8]).tn, 32);
  ok(fitTileCols(TEXTURE_GEMM_TILE, 64, cols16) === TEXTURE_GEMM_TILE, "a tile that fits is returned as is");
  throws(() => fitTileCols(TEXTURE_GEMM_TILE, 64, [6]), /multiples of 4/);
  throws(() => fitTileCols(TEXTURE_GEMM_TILE, 64, []), /multiples of 4/);
  // The default: 16 columns for the projections, 8 for attention's context (n = d = 64), as gemm takes them.
  deepStrictEqual([...TEXTURE_TILE_COLS], [16, 8]);
  deepStrictEqual(textureTileFor(1024, 768, 1), { ...TEXTURE_GEMM_TILE, tn: 16 });
  deepStrictEqual(textureTileFor(128, 64, 96), TEXTURE_GEMM_TILE);
  deepStrictEqual(textureTileFor(128, 128, 96), { ...TEXTURE_GEMM_TILE, tn: 16 });
  deepStrictEqual(textureTileFor(1024, 8, 1), NARROW_TEXTURE_TILE);
  deepStrictEqual(textureTileFor(52, 52, 24), { ...SMALL_BATCHED_TEXTURE_TILE, wy: 1 });
  const saved = gemmAutoOptions.tileCols;
  try {
    gemmAutoOptions.tileCols = [8];
    deepStrictEqual(textureTileFor(1024, 768, 1), TEXTURE_GEMM_TILE);
  } finally {
    gemmAutoOptions.tileCols = saved;
  }

  // The wide tile runs where gemm takes it (ragged n and k inside the last block, bias, accumulate, transposes,
  // batching), is right against the reference, and gives the bits of the 8-column tile forced on the inputs;
  // where 8 columns are chosen (n that a 128-column workgroup would pad), the choice and the reference are checked.
  const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
  let seed = 2500;
  const pair = (a: number): [number, number] => [3 * a, a];
  const batch = { batch: [2, 3] as [number, number], strideA: pair(70 * 37), strideB: pair(120 * 37) };
  const cases: [Case, number, number][] = [
    [{ m: 100, n: 250, k: 37, transB: true }, 16, 1],
    [{ m: 256, n: 127, k: 61, transB: true, bias: true }, 16, 8],
    [{ m: 96, n: 130, k: 45, transA: true, accumulate: true, alpha: 0.5 }, 8, 2],
    [{ m: 70, n: 120, k: 37, transB: true, ...batch, strideC: pair(70 * 120) }, 16, 1],
    [{ m: 100, n: 64, k: 33 }, 8, 1],
  ];
  for (const [c, tn, wy] of cases) {
    seed += 10;
    const fitted = await runCase({ ...c, path: "texture", textureTn: tn, textureWy: wy }, seed);
    if (tn === 8) continue;
    const narrow = await runCase(
      { ...c, path: "texture", textureTile: { ...TEXTURE_GEMM_TILE, wy }, textureTn: 8, textureWy: wy },
      seed,
    );
    const a = bits(fitted), b = bits(narrow);
    const diff = a.findIndex((v, i) => v !== b[i]);
    strictEqual(diff, -1, `${JSON.stringify(c)}: element ${diff} differs between tn ${tn} and 8`);
  }
});

Deno.test("gemm: texture-fed path on batched products (attention shapes, transposes, chunks)", async () => {
  let seed = 700;
  // Attention as the model records it, heads strided inside [batch*seq, hidden], ragged seq and head width.
  const batch = 2, heads = 3, seq = 13, d = 6, hidden = heads * d;
  const tok: [number, number] = [seq * hidden, d], att: [number, number] = [heads * seq * seq, seq * seq];
  const attn = { batch: [batch, heads] as [number, number], path: "texture" as const };
  // S = alpha·Q·Kᵀ, P·V, dV = Pᵀ·dC, dQ = alpha·dS·K, dK = alpha·dSᵀ·Q (the last accumulating, as a check).
  await runCase({
    m: seq,
    n: seq,
    k: d,
    transB: true,
    lda: hidden,
    ldb: hidden,
    alpha: 1 / Math.sqrt(d),
    strideA: tok,
    strideB: tok,
    strideC: att,
    ...attn,
  }, ++seed);
  await runCase({
    m: seq,
    n: d,
    k: seq,
    lda: seq,
    ldb: hidden,
    ldc: hidden,
    strideA: att,
    strideB: tok,
    strideC: tok,
    ...attn,
  }, ++seed);
  await runCase({
    m: seq,
    n: d,
    k: seq,
    transA: true,
    lda: seq,
    ldb: hidden,
    ldc: hidden,
    strideA: att,
    strideB: tok,
    strideC: tok,
    ...attn,
  }, ++seed);
  await runCase({
    m: seq,
    n: d,
    k: seq,
    transA: true,
    lda: seq,
    ldb: hidden,
    ldc: hidden,
    alpha: 0.3,
    accumulate: true,
    strideA: att,
    strideB: tok,
    strideC: tok,
    ...attn,
  }, ++seed);
  // Every transpose combination with both batch levels, offsets, padded strides, alpha, bias and accumulate.
  for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]]) {
    const m = 9, n = 70, k = 13;
    await runCase({
      m,
      n,
      k,
      transA,
      transB,
      lda: transA ? m + 2 : k + 1,
      ldb: transB ? k + 3 : n + 1,
      ldc: n + 2,
      offA: 3,
      offB: 5,
      offC: 2,
      alpha: -0.6,
      bias: transA,
      accumulate: transB,
      batch: [3, 2],
      strideA: [1000, 300],
      strideB: [2200, 1100],
      strideC: [1500, 700],
      path: "texture",
    }, ++seed);
  }
  // "auto" takes it for attention at short sequences too (24 × 5×5×16 >= TEXTURE_GEMM_MIN_WORK).
  const gpu = await getGpu();
  await runCase({
    m: 5,
    n: 5,
    k: 16,
    transB: true,
    batch: [4, 6],
    strideA: [6 * 80, 80],
    strideB: [6 * 80, 80],
    strideC: [6 * 25, 25],
    dispatches: gpu.isCpu ? 3 : 1,
  }, ++seed);
  // Batches that do not fit one packed texture take several chunks (rows of At, then rows of Bt, overflow).
  // The sizes follow the adapter's texture limit (16384 on llvmpipe: m = 606, k = 2421; 32768 on an H100), so
  // that 27 batch elements fit a texture on every adapter: chunks of 27, 27 and 9 (or 6).
  const rows27 = Math.floor(gpu.limits.maxTextureDimension2D / 27);
  const byRows = { m: rows27, n: 9, k: 6, batch: [7, 9] as [number, number] };
  ok(textureGemmChunk(gpu, byRows.m, byRows.k, 63) === 27, `the m = ${rows27} case must take chunks of 27`);
  await runCase({
    ...byRows,
    transA: true,
    strideA: [9 * 6 * rows27, 6 * rows27],
    strideB: [9 * 60, 60],
    strideC: [9 * 9 * rows27, 9 * rows27],
    path: "texture",
  }, ++seed);
  const byK = { m: 3, n: 18, k: 4 * rows27 - 3, batch: [6, 10] as [number, number] };
  ok(textureGemmChunk(gpu, byK.m, byK.k, 60) === 27, `the k = ${byK.k} case must take chunks of 27`);
  await runCase({
    ...byK,
    transB: true,
    strideA: [10 * 3 * byK.k, 3 * byK.k],
    strideB: [10 * 18 * byK.k, 18 * byK.k],
    strideC: [10 * 54, 54],
    path: "texture",
  }, ++seed);
});

Deno.test("gemm: texture-fed path with op(A) staged by copyBufferToTexture (256-byte row strides)", async () => {
  let seed = 800;
  // Unbatched: lda a multiple of 64 floats, offA a multiple of 4, k a multiple of 4; ragged m and n.
  const plain = { m: 37, n: 70, k: 40, lda: 64, offA: 8 };
  ok(canCopyOperand({ buf: null!, rows: plain.m, off: plain.offA, rs: plain.lda, ps: 1 }, plain.k));
  await runCase({ ...plain, transB: true, path: "texture", dispatches: 2 }, ++seed);
  await runCase(
    { ...plain, ldb: 75, offB: 3, alpha: 0.7, bias: true, accumulate: true, path: "texture" },
    ++seed,
  );
  // A texture grown by earlier products (wider, taller) and a product whose At is narrower than it.
  await runCase(
    { m: 130, n: 19, k: 128, lda: 192, offA: 64, transB: true, path: "texture", dispatches: 2 },
    ++seed,
  );
  await runCase({ m: 5, n: 33, k: 4, lda: 128, path: "texture" }, ++seed);
  // Batched as in attention: Q·Kᵀ with heads of width 16 inside a 64-wide hidden (row stride 256 bytes).
  const batch = 3, heads = 4, seq = 11, d = 16, hidden = heads * d;
  const tok: [number, number] = [seq * hidden, d];
  ok(canCopyOperand({ buf: null!, rows: seq, off: 0, rs: hidden, ps: 1, bs: tok }, d, batch * heads));
  await runCase({ ...scoresCase(batch, heads, seq, d, 0.25), path: "texture", dispatches: 2 }, ++seed);
  // P·V with P rows of 64 floats (seq 64), batched, accumulate.
  const seq2 = 64;
  const att2: [number, number] = [heads * seq2 * seq2, seq2 * seq2],
    tok2: [number, number] = [seq2 * hidden, d];
  ok(canCopyOperand({ buf: null!, rows: seq2, off: 0, rs: seq2, ps: 1, bs: att2 }, seq2, 2 * heads));
  await runCase({
    m: seq2,
    n: d,
    k: seq2,
    lda: seq2,
    ldb: hidden,
    ldc: hidden,
    accumulate: true,
    batch: [2, heads],
    strideA: att2,
    strideB: tok2,
    strideC: tok2,
    path: "texture",
    dispatches: 2,
  }, ++seed);
  // Chunked: 60 batch elements of ~limit/27 rows do not fit one texture (chunks of 27, 27 and 6, each one B
  // packing and one GEMM dispatch; m = 606 on llvmpipe's 16384-texel limit).
  const gpu = await getGpu();
  const m27 = Math.floor(gpu.limits.maxTextureDimension2D / 27);
  ok(textureGemmChunk(gpu, m27, 4, 60) === 27);
  await runCase({
    m: m27,
    n: 17,
    k: 4,
    lda: 64,
    batch: [6, 10],
    strideA: [10 * 64 * m27, 64 * m27],
    strideB: [40, 4],
    strideC: [10 * 17 * m27, 17 * m27],
    path: "texture",
    dispatches: 6,
  }, ++seed);
  // Not copyable (the packing kernel runs): misaligned offset, row stride not a multiple of 64, k % 4 != 0.
  await runCase(
    { m: 37, n: 70, k: 40, lda: 64, offA: 6, transB: true, path: "texture", dispatches: 3 },
    ++seed,
  );
  ok(!canCopyOperand({ buf: null!, rows: 3, off: 2, rs: 64, ps: 1 }, 8));
  ok(!canCopyOperand({ buf: null!, rows: 3, off: 0, rs: 60, ps: 1 }, 8));
  ok(!canCopyOperand({ buf: null!, rows: 3, off: 0, rs: 64, ps: 1 }, 6));
  ok(!canCopyOperand({ buf: null!, rows: 3, off: 0, rs: 64, ps: 1, bs: [6, 0] }, 8, 2));
});

Deno.test("gemm: texture-fed path stages op(B) by a copy and a re-layout kernel where its layout allows", async () => {
  const gpu = await getGpu();
  // Which layouts take which staging (n = rows of the operand, k its depth; PackedOperand as gemm builds it).
  const byRows = (rs: number, off = 0): PackedOperand => ({ buf: null!, rows: 70, off, rs, ps: 1 });
  const byCols = (rows: number, ps: number, off = 0): PackedOperand => ({ buf: null!, rows, off, rs: 1, ps });
  strictEqual(copyModeB(gpu, byRows(64), 64, 1), "rows");
  strictEqual(copyModeB(gpu, byRows(64), 62, 1), null); // k not whole texels
  strictEqual(copyModeB(gpu, byRows(60), 60, 1), null); // row stride not a multiple of 256 bytes
  strictEqual(copyModeB(gpu, byCols(60, 64), 37, 1), "cols");
  strictEqual(copyModeB(gpu, byCols(70, 128), 37, 1), null); // n not a multiple of 4
  strictEqual(copyModeB(gpu, byCols(60, 64, 2), 37, 1), null); // misaligned
  strictEqual(copyModeB(gpu, byCols(60, 64), gpu.limits.maxTextureDimension2D, 2), null); // too tall
  // Which kernels run, and the results against the float64 reference (ragged m, n, k; the pack kernel for A).
  let seed = 1000;
  const PACK = "gemm-tex-pack", RELAYOUT = "gemm-tex-relayout", GEMM = "gemm-tex";
  // y = x·Wᵀ with W [70, 64]: rows mode; A [37, 64] with row stride 66 is packed.
  await runCase({
    m: 37,
    n: 70,
    k: 64,
    lda: 66,
    transB: true,
    path: "texture",
    kernels: [PACK, RELAYOUT, GEMM].join(","),
  }, ++seed);
  // dX = dY·W with op(B) = B [37, 60] (row stride 64): cols mode, k = 37 ragged; bias, alpha, accumulate.
  await runCase({
    m: 33,
    n: 60,
    k: 37,
    lda: 40,
    ldb: 64,
    alpha: -0.7,
    bias: true,
    accumulate: true,
    path: "texture",
    kernels: [PACK, RELAYOUT, GEMM].join(","),
  }, ++seed);
  // n = 70 is not a multiple of 4: the pack kernel stages B.
  await runCase(
    { m: 33, n: 70, k: 37, lda: 40, ldb: 128, path: "texture", kernels: [PACK, PACK, GEMM].join(",") },
    ++seed,
  );
  // Batched, as attention's P·V (V [seq, d] per head inside [batch·seq, hidden], cols mode; P packed, its rows
  // of 13 floats not 16-byte aligned) and Q·Kᵀ (rows mode; Q copied).
  const seq = 13, d = 16, heads = 4, batch = 3;
  await runCase(
    { ...contextCase(batch, heads, seq, d), path: "texture", kernels: [PACK, RELAYOUT, GEMM].join(",") },
    ++seed,
  );
  await runCase(
    { ...scoresCase(batch, heads, seq, d, 0.25), path: "texture", kernels: [RELAYOUT, GEMM].join(",") },
    ++seed,
  );
});

Deno.test("gemm: a frozen B packed once is reused, re-packed after forget, and skipped past the budget", async () => {
  const gpu = await getGpu();
  // x·Wᵀ (transB, as the model's projections) and dY·W (the backward product): two packings of one W.
  const m = 37, n = 70, k = 45;
  const w0 = randomF32(n * k, 11), w1 = randomF32(n * k, 12);
  const x = randomF32(m * k, 13), dy = randomF32(m * n, 14);
  const bufW = gpu.upload(w0, "W"), bufX = gpu.upload(x, "x"), bufDy = gpu.upload(dy, "dY");
  const y = gpu.buffer(4 * m * n, "y"), dx = gpu.buffer(4 * m * k, "dX");
  const cache = new PackedWeightCache(gpu, 16 * (n * Math.ceil(k / 4) + k * Math.ceil(n / 4)));
  const run = async (w: Float32Array, expectDispatches: [number, number], what: string) => {
    for (const [buf, len] of [[y, m * n], [dx, m * k]] as const) gpu.write(buf, poison(len));
    const rec = new Recorder(gpu);
    gemm(rec, { a: bufX, b: bufW, c: y, m, n, k, transB: true, path: "texture", packedB: cache });
    strictEqual(rec.dispatchCount, expectDispatches[0], `${what}: dispatches of x·Wᵀ`);
    gemm(rec, { a: bufDy, b: bufW, c: dx, m, n: k, k: n, path: "texture", packedB: cache });
    strictEqual(rec.dispatchCount, expectDispatches[0] + expectDispatches[1], `${what}: dispatches of dY·W`);
    assertClose(await rec.read(y, m * n), gemmRef({ m, n, k, transB: true }, x, w), TOL, `${what}: x·Wᵀ`);
    assertClose(await rec.read(dx, m * k), gemmRef({ m, n: k, k: n }, dy, w), TOL, `${what}: dY·W`);
  };
  // k = 45 and n = 70 are not multiples of 4: op(A) is packed too (no copy), so 3 dispatches when B is packed.
  await run(w0, [3, 3], "first use packs both layouts");
  strictEqual(cache.bytes, cache.budgetBytes, "both packings held, exactly the budget");
  deepStrictEqual(cache.stats, { hits: 0, packs: 2 });
  await run(w0, [2, 2], "second use reads the packed textures");
  deepStrictEqual(cache.stats, { hits: 2, packs: 2 });
  gpu.write(bufW, w1);
  cache.forget(bufW);
  await run(w1, [3, 3], "after forget the new W is packed again");
  await run(w1, [2, 2], "and reused");
  strictEqual(cache.bytes, cache.budgetBytes, "re-packing reuses the textures");
  // A second weight does not fit the budget: packed per product, correct, not cached.
  const bufW2 = gpu.upload(w0, "W2");
  const rec = new Recorder(gpu);
  gemm(rec, { a: bufX, b: bufW2, c: y, m, n, k, transB: true, path: "texture", packedB: cache });
  strictEqual(rec.dispatchCount, 3, "over budget: packed per product");
  assertClose(await rec.read(y, m * n), gemmRef({ m, n, k, transB: true }, x, w0), TOL, "over budget: x·W2ᵀ");
  strictEqual(cache.bytes, cache.budgetBytes, "nothing added past the budget");
  cache.destroy();
  for (const b of [bufW, bufW2, bufX, bufDy, y, dx]) b.destroy();
});

Deno.test("gemm: the texture path keeps one op(B) texture per width, not one grown to the union of shapes", async () => {
  // A Gpu of its own (the texture caches are per Gpu) on the shared device. Two forward-like products (op(B) =
  // Wᵀ, copied in rows mode: staging "Bs", then "B") whose op(B) textures are 1024 × 64 and 64 × 1024 texels
  // (heights rounded to 256): one width each, 14.25 MiB in all with op(A)'s; grown to the union of both
  // shapes, the two op(B) roles alone would hold 2 × 16 MiB, plus the smaller textures they replaced.
  const shared = await getGpu();
  const gpu = new Gpu(shared.device, shared.info, { isCpu: shared.isCpu });
  await runCase({ m: 16, n: 1024, k: 256, transB: true, path: "texture", textureTn: 16 }, 990, gpu);
  await runCase({ m: 16, n: 64, k: 4096, transB: true, path: "texture" }, 991, gpu);
  const { live, replaced } = cachedTextureBytes(gpu);
  const MiB = 2 ** 20;
  strictEqual(live + replaced, 14.25 * MiB, `staging and packing textures ${(live + replaced) / MiB} MiB`);
});

Deno.test("gemm: bad arguments give clear errors", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const a = gpu.buffer(4 * 12, "A"), b = gpu.buffer(4 * 12, "B"), c = gpu.buffer(4 * 9, "C");
  throws(
    () => gemm(rec, { a, b, c, m: 3, n: 3, k: 5 }),
    /gemm: buffer a \(A\) has 12 f32 elements, needs at least 15/,
  );
  throws(() => gemm(rec, { a, b, c, m: 3, n: 4, k: 3 }), /gemm: buffer c \(C\) .* needs at least 12/);
  throws(() => gemm(rec, { a, b, c, m: 3, n: 3, k: 4, lda: 3 }), /gemm: lda 3 < k 4/);
  throws(() => gemm(rec, { a, b, c: a, m: 3, n: 3, k: 4 }), /different buffer/);
  throws(() => gemm(rec, { a, b, c, m: 2.5, n: 3, k: 4 }), /gemm: m must be an integer/);
  throws(() => gemm(rec, { a, b, c, m: 3, n: 3, k: 4, batch: [2, 1], strideC: [9, 0] }), /buffer c/);
  throws(
    () => gemm(rec, { a, b, c, m: 3, n: 3, k: 4, tile: { wx: 8, wy: 8, tm: 2, tn: 6 } }),
    /tn a multiple of 4/,
  );
  throws(() => gemm(rec, { a, b, c, m: 3, n: 3, k: 0, path: "texture" }), /path "texture" needs 1 <= k/);
  throws(
    () =>
      gemm(rec, {
        a,
        b,
        c,
        m: 3,
        n: 3,
        k: 4,
        path: "shared",
        sharedTile: { wx: 4, wy: 4, tm: 1, tn: 4, bk: 3 },
      }),
    /the 4x3 and 3x16 blocks must split evenly over its 16 invocations/,
  );
  {
    // One batch element taller than the adapter's textures cannot take the texture path.
    const rows = gpu.limits.maxTextureDimension2D + 1;
    const tall = gpu.buffer(4 * rows, "tall"), out = gpu.buffer(4 * rows, "out");
    throws(
      () => gemm(rec, { a: tall, b, c: out, m: rows, n: 1, k: 1, path: "texture" }),
      new RegExp(`path "texture" needs 1 <= k and ceil\\(k/4\\), m, n <= ${rows - 1} \\(got ${rows}x1x1`),
    );
    tall.destroy();
    out.destroy();
  }
  strictEqual(rec.dispatchCount, 0);
  for (const x of [a, b, c]) x.destroy();
});
