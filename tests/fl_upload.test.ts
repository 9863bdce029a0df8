import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { drawMasks, keptCount, type Masks, type ModuleSpec } from "../fl/masks.ts";
import {
  applyReturnedEntries,
  downlinkBytes,
  extractSubAdapter,
  INDEX_BYTES,
  mergeSubAdapter,
  resetDropped,
  SEED_BYTES,
  TENSOR_HEADER_BYTES,
  uplinkBytes,
} from "../fl/upload.ts";
import { randomF32 } from "./util.ts";

function spec(path: string, nOut: number, nIn: number): ModuleSpec {
  return { path, nOut, nIn, a: `${path}.lora_A.weight`, b: `${path}.lora_B.weight` };
}

const M0 = spec("m0", 3, 4), M1 = spec("m1", 2, 2);
const HAND_MASKS: Masks = new Map([["m0", { a: Float32Array.of(1, 0, 1, 1), b: Float32Array.of(0, 1, 0) }]]);

Deno.test("uplinkBytes: hand-made masks, seed and index encodings", () => {
  const o = { modules: [M0, M1], masks: HAND_MASKS, r: 2, headParams: 10, headTensors: 2 };
  // m0: A keeps 3 columns (2·3), B keeps 1 row (1·2); m1 unmasked: 2·2 + 2·2; head 10 → 26 values.
  const seed = uplinkBytes(o);
  deepStrictEqual(seed, {
    valueCount: 26,
    values: 104,
    indices: SEED_BYTES,
    header: 6 * TENSOR_HEADER_BYTES,
    total: 208,
  });
  const idx = uplinkBytes({ ...o, maskEncoding: "indices" });
  // Index lists only for the masked tensors of m0: 3 + 1 kept indices.
  deepStrictEqual(idx, { valueCount: 26, values: 104, indices: 4 * INDEX_BYTES, header: 96, total: 216 });
  strictEqual(uplinkBytes({ ...o, bytesPerValue: 2 }).values, 52);
  // FFA-LoRA: A is not sent.
  deepStrictEqual(uplinkBytes({ ...o, includeA: false }), {
    valueCount: 16,
    values: 64,
    indices: SEED_BYTES,
    header: 64,
    total: 136,
  });
  strictEqual(uplinkBytes({ ...o, includeA: false, maskEncoding: "indices" }).indices, 4);
  // Nothing dropped: no mask overhead in either encoding.
  for (const maskEncoding of ["seed", "indices"] as const) {
    const full = uplinkBytes({ ...o, masks: new Map(), maskEncoding });
    deepStrictEqual(full, { valueCount: 32, values: 128, indices: 0, header: 96, total: 224 });
  }
});

Deno.test("downlinkBytes: sub-adapter plus residual factors", () => {
  const o = { modules: [M0, M1], masks: HAND_MASKS, r: 2, headParams: 10, headTensors: 2 };
  deepStrictEqual(downlinkBytes(o), uplinkBytes(o));
  const d = downlinkBytes({ ...o, residualRanks: new Map([["m0", 6], ["m1", 4]]) });
  // (3 + 4)·6 + (2 + 2)·4 = 58 residual values, 4 more tensors.
  deepStrictEqual(d, { valueCount: 84, values: 336, indices: 8, header: 160, total: 504 });
  throws(() => downlinkBytes({ ...o, residualRanks: new Map([["zz", 2]]) }), /unknown module "zz"/);
});

Deno.test("uplinkBytes agrees with the tensors extractSubAdapter actually produces (random masks)", () => {
  const modules = [spec("a", 17, 9), spec("b", 8, 33), spec("c", 64, 64)];
  const r = 3;
  const adapter = new Map<string, Float32Array>();
  modules.forEach((m, i) => {
    adapter.set(m.a, randomF32(r * m.nIn, 10 + i));
    adapter.set(m.b, randomF32(m.nOut * r, 20 + i));
  });
  adapter.set("head.w", randomF32(12, 1));
  adapter.set("head.b", randomF32(3, 2));
  for (const gamma of [0, 0.2, 0.5]) {
    const masks = drawMasks({ seed: 1, round: 2, device: 0, modules, gamma, kind: "fixed" });
    const sub = extractSubAdapter(adapter, masks, modules);
    let values = 0;
    for (const t of sub.values()) values += t.length;
    const b = uplinkBytes({ modules, masks, r, headParams: 15, headTensors: 2, maskEncoding: "indices" });
    strictEqual(b.valueCount, values, `γ=${gamma}`);
    strictEqual(b.header, sub.size * TENSOR_HEADER_BYTES);
    let kept = 0;
    for (const m of modules) {
      const mk = masks.get(m.path)!;
      kept += (keptCount(mk.a) < m.nIn ? keptCount(mk.a) : 0) +
        (keptCount(mk.b) < m.nOut ? keptCount(mk.b) : 0);
    }
    strictEqual(b.indices, kept * INDEX_BYTES);
    strictEqual(b.total, values * 4 + kept * INDEX_BYTES + sub.size * TENSOR_HEADER_BYTES);
  }
});

function bitsEqual(x: number, y: number): boolean {
  const f = new Float32Array([x, y]);
  const u = new Uint32Array(f.buffer);
  return u[0] === u[1];
}

Deno.test("applyReturnedEntries: dropped entries bit-identical to global, kept ones to trained", () => {
  const m = spec("q", 11, 7), r = 3;
  const masks = drawMasks({ seed: 2, round: 1, device: 3, modules: [m], gamma: 0.4 });
  const mk = masks.get("q")!;
  const global = new Map([[m.a, randomF32(r * m.nIn, 1)], [m.b, randomF32(m.nOut * r, 2)], [
    "h",
    randomF32(5, 3),
  ]]);
  // Trained values: NaN wherever the entry was dropped, so any leak of them into the result is caught.
  const ta = randomF32(r * m.nIn, 4), tb = randomF32(m.nOut * r, 5);
  for (let t = 0; t < r; t++) for (let j = 0; j < m.nIn; j++) if (!mk.a[j]) ta[t * m.nIn + j] = NaN;
  for (let i = 0; i < m.nOut; i++) for (let t = 0; t < r; t++) if (!mk.b[i]) tb[i * r + t] = NaN;
  const trained = new Map([[m.a, ta], [m.b, tb], ["h", randomF32(5, 6)]]);
  const out = applyReturnedEntries(global, trained, masks, [m]);
  const oa = out.get(m.a)!, ob = out.get(m.b)!, ga = global.get(m.a)!, gb = global.get(m.b)!;
  for (let t = 0; t < r; t++) {
    for (let j = 0; j < m.nIn; j++) {
      const o = t * m.nIn + j;
      ok(bitsEqual(oa[o], mk.a[j] ? ta[o] : ga[o]), `A[${t},${j}]`);
    }
  }
  for (let i = 0; i < m.nOut; i++) {
    for (let t = 0; t < r; t++) {
      ok(bitsEqual(ob[i * r + t], mk.b[i] ? tb[i * r + t] : gb[i * r + t]), `B[${i},${t}]`);
    }
  }
  ok(out.get("h")!.every((v, i) => bitsEqual(v, trained.get("h")![i])));
  ok(keptCount(mk.a) < m.nIn && keptCount(mk.b) < m.nOut, "test needs some drops");
  // Round trip through the compact form gives the same thing.
  deepStrictEqual(mergeSubAdapter(global, extractSubAdapter(trained, masks, [m]), masks, [m]), out);
  // No masks: everything from trained.
  const full = applyReturnedEntries(global, trained, new Map(), [m]);
  deepStrictEqual(full.get(m.a), ta);
});

Deno.test("extractSubAdapter: hand-made masks give the kept columns of A and rows of B", () => {
  const a = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8); // [2, 4]
  const b = Float32Array.of(10, 11, 20, 21, 30, 31); // [3, 2]
  const sub = extractSubAdapter(new Map([[M0.a, a], [M0.b, b]]), HAND_MASKS, [M0]);
  deepStrictEqual([...sub.get(M0.a)!], [1, 3, 4, 5, 7, 8]);
  deepStrictEqual([...sub.get(M0.b)!], [20, 21]);
});

Deno.test("resetDropped: zeroes exactly the dropped columns of A and rows of B", () => {
  const a = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  const b = Float32Array.of(10, 11, 20, 21, 30, 31);
  const c = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8); // m1: no mask, untouched
  const head = Float32Array.of(9, 9);
  const input = new Map([[M0.a, a], [M0.b, b], [M1.a, c.slice(0, 4)], [M1.b, c.slice(4)], ["h", head]]);
  const out = resetDropped(input, HAND_MASKS, [M0, M1]);
  deepStrictEqual([...out.get(M0.a)!], [1, 0, 3, 4, 5, 0, 7, 8]);
  deepStrictEqual([...out.get(M0.b)!], [0, 0, 20, 21, 0, 0]);
  deepStrictEqual([...out.get(M1.a)!], [1, 2, 3, 4]);
  deepStrictEqual([...out.get("h")!], [9, 9]);
  deepStrictEqual([...a], [1, 2, 3, 4, 5, 6, 7, 8], "input must not be modified");
});

Deno.test("upload helpers: clear errors", () => {
  const o = { modules: [M0], masks: HAND_MASKS, r: 2, headParams: 10 };
  throws(() => uplinkBytes({ ...o, r: 0 }), /r must be a positive integer/);
  throws(() => uplinkBytes({ ...o, headParams: -1 }), /headParams/);
  // deno-lint-ignore no-explicit-any
  throws(() => uplinkBytes({ ...o, maskEncoding: "bits" as any }), /maskEncoding/);
  throws(
    () => uplinkBytes({ ...o, masks: new Map([["m0", { a: new Float32Array(4), b: new Float32Array(5) }]]) }),
    /mask b of "m0" has length 5, expected nOut = 3/,
  );
  throws(() => resetDropped(new Map(), HAND_MASKS, [M0]), /lacks tensor "m0.lora_A.weight"/);
  const g = new Map([[M0.a, new Float32Array(8)], [M0.b, new Float32Array(6)]]);
  throws(
    () => applyReturnedEntries(g, new Map([[M0.a, new Float32Array(8)]]), HAND_MASKS, [M0]),
    /m0.lora_B/,
  );
  throws(() => mergeSubAdapter(g, new Map(), HAND_MASKS, [M0]), /sub-adapter "m0.lora_A.weight"/);
});
