import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { drawMasks, keptCount, maskStats, type ModuleSpec, nothingDropped } from "../fl/masks.ts";

function modules(sizes: [number, number][]): ModuleSpec[] {
  return sizes.map(([nOut, nIn], i) => ({
    path: `m${i}`,
    nOut,
    nIn,
    a: `base_model.model.m${i}.lora_A.weight`,
    b: `base_model.model.m${i}.lora_B.weight`,
  }));
}

const MODS = modules([[37, 53], [64, 64], [5, 300]]);

function isBinary(v: Float32Array): boolean {
  return v.every((x) => x === 0 || x === 1);
}

Deno.test("drawMasks: identical across reruns, 0/1 and correctly sized", () => {
  for (const kind of ["bernoulli", "fixed"] as const) {
    const a = drawMasks({ seed: 11, round: 2, device: 1, modules: MODS, gamma: 0.3, kind });
    const b = drawMasks({ seed: 11, round: 2, device: 1, modules: MODS, gamma: 0.3, kind });
    deepStrictEqual(a, b);
    for (const m of MODS) {
      const mk = a.get(m.path)!;
      strictEqual(mk.a.length, m.nIn);
      strictEqual(mk.b.length, m.nOut);
      ok(isBinary(mk.a) && isBinary(mk.b), `${kind} ${m.path} not 0/1`);
    }
  }
});

Deno.test("drawMasks: differ across rounds, devices, seeds and modules", () => {
  const base = { seed: 3, round: 4, device: 2, modules: MODS, gamma: 0.5 };
  const m0 = drawMasks(base);
  notDeepStrictEqual(m0, drawMasks({ ...base, round: 5 }));
  notDeepStrictEqual(m0, drawMasks({ ...base, device: 0 }));
  notDeepStrictEqual(m0, drawMasks({ ...base, seed: 4 }));
  // Same size modules 0 and 1 of a square list must not share a mask; A and B of a square module neither.
  const sq = modules([[64, 64], [64, 64]]);
  const s = drawMasks({ ...base, modules: sq });
  notDeepStrictEqual(s.get("m0")!.a, s.get("m1")!.a);
  notDeepStrictEqual(s.get("m0")!.b, s.get("m1")!.b);
  notDeepStrictEqual(s.get("m0")!.a, s.get("m0")!.b);
});

Deno.test("drawMasks fixed: drops exactly floor(gamma n)", () => {
  for (const gamma of [0.1, 0.3, 0.5, 0.77]) {
    for (let round = 0; round < 3; round++) {
      const masks = drawMasks({ seed: 1, round, device: 0, modules: MODS, gamma, kind: "fixed" });
      for (const m of MODS) {
        const mk = masks.get(m.path)!;
        strictEqual(m.nIn - keptCount(mk.a), Math.floor(gamma * m.nIn), `A of ${m.path} at γ=${gamma}`);
        strictEqual(m.nOut - keptCount(mk.b), Math.floor(gamma * m.nOut), `B of ${m.path} at γ=${gamma}`);
      }
    }
  }
  // 0.29 · 100 is 28.999… in binary: still exactly 29 dropped.
  const hundred = drawMasks({
    seed: 1,
    round: 0,
    device: 0,
    modules: modules([[100, 100]]),
    gamma: 0.29,
    kind: "fixed",
  });
  strictEqual(100 - keptCount(hundred.get("m0")!.a), 29);
});

Deno.test("drawMasks bernoulli: kept fraction ≈ 1 − gamma", () => {
  const big = modules([[1000, 1000], [1000, 1000]]);
  for (const gamma of [0.1, 0.3, 0.6]) {
    let kept = 0, total = 0;
    for (let device = 0; device < 3; device++) {
      const st = maskStats(drawMasks({ seed: 9, round: 1, device, modules: big, gamma }));
      kept += st.entries * 4000;
      total += 4000;
    }
    const frac = kept / total;
    // 12000 Bernoulli draws: sd of the fraction ≤ 0.0046, allow ~4.5 sd.
    ok(Math.abs(frac - (1 - gamma)) < 0.02, `γ=${gamma}: kept ${frac}, expected ≈ ${1 - gamma}`);
  }
});

Deno.test("drawMasks: gamma = 0 keeps everything; maskStats of full and empty masks", () => {
  for (const kind of ["bernoulli", "fixed"] as const) {
    const masks = drawMasks({ seed: 5, round: 0, device: 0, modules: MODS, gamma: 0, kind });
    for (const m of masks.values()) ok(m.a.every((x) => x === 1) && m.b.every((x) => x === 1));
    ok(nothingDropped(masks));
    const st = maskStats(masks);
    strictEqual(st.entries, 1);
    strictEqual(st.deltaW, 1);
  }
  strictEqual(maskStats(new Map()).entries, 1);
  ok(!nothingDropped(drawMasks({ seed: 5, round: 0, device: 0, modules: MODS, gamma: 0.3 })));
});

Deno.test("maskStats: hand-built counts", () => {
  const masks = new Map([["x", { a: Float32Array.of(1, 0, 1, 0), b: Float32Array.of(1, 1, 0) }]]);
  const st = maskStats(masks);
  strictEqual(st.a, 0.5);
  strictEqual(st.b, 2 / 3);
  strictEqual(st.entries, 4 / 7);
  strictEqual(st.deltaW, (2 * 2) / 12);
  deepStrictEqual(st.perModule.get("x"), { a: 0.5, b: 2 / 3 });
});

Deno.test("drawMasks: clear errors on bad input", () => {
  const base = { seed: 1, round: 0, device: 0, modules: MODS, gamma: 0.3 };
  throws(() => drawMasks({ ...base, gamma: 1 }), /gamma/);
  throws(() => drawMasks({ ...base, gamma: -0.1 }), /gamma/);
  throws(() => drawMasks({ ...base, gamma: NaN }), /gamma/);
  throws(() => drawMasks({ ...base, round: 1.5 }), /round/);
  throws(() => drawMasks({ ...base, modules: [...MODS, MODS[0]] }), /appears twice/);
  throws(() => drawMasks({ ...base, modules: modules([[0, 3]]) }), /nOut/);
  // deno-lint-ignore no-explicit-any
  throws(() => drawMasks({ ...base, kind: "uniform" as any }), /kind/);
});
