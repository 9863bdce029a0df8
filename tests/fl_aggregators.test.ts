import { deepStrictEqual, notStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  type ClientResult,
  dataWeights,
  denseDelta,
  makeAggregator,
  type Normalisation,
} from "../fl/aggregators.ts";
import { drawMasks, type Masks, type ModuleSpec } from "../fl/masks.ts";
import { applyReturnedEntries } from "../fl/upload.ts";
import { randomF32, randomF64, relErr } from "./util.ts";

function spec(path: string, nOut: number, nIn: number): ModuleSpec {
  return {
    path,
    nOut,
    nIn,
    a: `base_model.model.${path}.lora_A.weight`,
    b: `base_model.model.${path}.lora_B.weight`,
  };
}

// Ragged shapes and per-module ranks (r is read from the tensors).
const MODS: { m: ModuleSpec; r: number }[] = [
  { m: spec("layer.0.query", 7, 5), r: 3 },
  { m: spec("layer.0.value", 4, 9), r: 2 },
];
const HEAD: [string, number][] = [["base_model.model.classifier.dense.weight", 6], [
  "base_model.model.classifier.out_proj.bias",
  2,
]];

function randomAdapter(seed: number): Map<string, Float32Array> {
  const ad = new Map<string, Float32Array>();
  let s = seed;
  for (const { m, r } of MODS) {
    ad.set(m.a, randomF32(r * m.nIn, s++));
    ad.set(m.b, randomF32(m.nOut * r, s++));
  }
  for (const [name, n] of HEAD) ad.set(name, randomF32(n, s++));
  return ad;
}

/** Devices' results: trained values where kept, global where dropped (as the round loop produces them). */
function makeResults(global: Map<string, Float32Array>, sizes: number[], gamma: number): ClientResult[] {
  const modules = MODS.map((x) => x.m);
  return sizes.map((numSamples, device) => {
    const masks: Masks = gamma > 0 ? drawMasks({ seed: 4, round: 0, device, modules, gamma }) : new Map();
    const trained = randomAdapter(1000 * (device + 1));
    return { device, numSamples, masks, adapter: applyReturnedEntries(global, trained, masks, modules) };
  });
}

/** s·B·A in float64 for B [nOut, r], A [r, nIn]. */
function sBA(b: ArrayLike<number>, a: ArrayLike<number>, nOut: number, r: number, nIn: number, s: number) {
  const out = new Float64Array(nOut * nIn);
  for (let i = 0; i < nOut; i++) {
    for (let t = 0; t < r; t++) {
      for (let j = 0; j < nIn; j++) out[i * nIn + j] += s * b[i * r + t] * a[t * nIn + j];
    }
  }
  return out;
}

/** Oracle: Σ_k w_k (W0 + s B_k A_k) − W0 = s Σ_k w_k B_k A_k, in float64. */
function oracleDelta(results: ClientResult[], m: ModuleSpec, r: number, s: number): Float64Array {
  const w = dataWeights(results);
  const out = new Float64Array(m.nOut * m.nIn);
  results.forEach((res, k) => {
    const d = sBA(res.adapter.get(m.b)!, res.adapter.get(m.a)!, m.nOut, r, m.nIn, s);
    for (let i = 0; i < out.length; i++) out[i] += w[k] * d[i];
  });
  return out;
}

const SCALE = 1.7;

Deno.test("fedex reproduces the dense average of the devices' models (γ = 0 and with dropout)", () => {
  for (const gamma of [0, 0.4]) {
    for (const normalisation of ["keepers", "all"] as Normalisation[]) {
      const global = randomAdapter(1);
      const results = makeResults(global, [50, 120, 31], gamma);
      const modules = MODS.map((x) => x.m);
      const out = makeAggregator("fedex").aggregate({
        global,
        modules,
        scale: SCALE,
        results,
        normalisation,
      });
      for (const { m, r } of MODS) {
        const res = out.residual.get(m.path)!;
        strictEqual(res.q, 4 * r, "q = (K+1)·r");
        const W0 = randomF64(m.nOut * m.nIn, 77);
        // Model after aggregation: (W0 + residual) + s·B̄Ā; the devices' average: W0 + s Σ w_k B_k A_k.
        const delta = denseDelta(res, m.nOut, m.nIn);
        const bar = sBA(out.adapter.get(m.b)!, out.adapter.get(m.a)!, m.nOut, r, m.nIn, SCALE);
        const got = W0.map((w0, i) => w0 + delta[i] + bar[i]);
        const want = oracleDelta(results, m, r, SCALE).map((d, i) => W0[i] + d);
        // fp32 factors (averages and s·w_k·B_k rounded once each): errors ~1e-7 of the terms' size.
        const e = relErr(got, want);
        ok(e < 1e-5, `fedex γ=${gamma} ${normalisation} ${m.path}: rel err ${e}`);
        // The update part alone (no W0 to hide in) must also match.
        const e2 = relErr(delta.map((d, i) => d + bar[i]), oracleDelta(results, m, r, SCALE));
        ok(e2 < 1e-5, `fedex update part γ=${gamma} ${normalisation} ${m.path}: rel err ${e2}`);
      }
    }
  }
});

Deno.test("fedavg is not exact: s·B̄Ā differs clearly from the average of s·B_k·A_k", () => {
  const global = randomAdapter(1);
  const results = makeResults(global, [50, 120, 31], 0);
  const modules = MODS.map((x) => x.m);
  const out = makeAggregator("fedavg").aggregate({
    global,
    modules,
    scale: SCALE,
    results,
    normalisation: "keepers",
  });
  strictEqual(out.residual.size, 0);
  for (const { m, r } of MODS) {
    const got = sBA(out.adapter.get(m.b)!, out.adapter.get(m.a)!, m.nOut, r, m.nIn, SCALE);
    const e = relErr(got, oracleDelta(results, m, r, SCALE));
    ok(e > 0.1, `fedavg should be inexact for random factors, rel err only ${e}`);
  }
});

Deno.test("fedavg with γ = 0: every tensor is the data-weighted average (float64 reference)", () => {
  const global = randomAdapter(1);
  const results = makeResults(global, [5, 1, 14], 0);
  const w = [0.25, 0.05, 0.7];
  const modules = MODS.map((x) => x.m);
  for (const normalisation of ["keepers", "all"] as Normalisation[]) {
    const out = makeAggregator("fedavg").aggregate({ global, modules, scale: SCALE, results, normalisation });
    deepStrictEqual([...out.adapter.keys()].sort(), [...global.keys()].sort());
    for (const [name, g] of global) {
      const want = new Float64Array(g.length);
      results.forEach((res, k) => res.adapter.get(name)!.forEach((v, i) => (want[i] += w[k] * v)));
      const e = relErr(out.adapter.get(name)!, want);
      ok(e < 1e-6, `${name}: rel err ${e}`);
      notStrictEqual(out.adapter.get(name), g, "output must not alias the global tensor");
    }
  }
});

// Hand-built case, worked by hand: r = 2, A [2, 3], B [2, 2]; w = (0.25, 0.75).
function handCase(): { global: Map<string, Float32Array>; results: ClientResult[]; m: ModuleSpec } {
  const m = spec("q", 2, 3);
  const global = new Map([
    [m.a, Float32Array.of(1, 2, 3, 4, 5, 6)],
    [m.b, Float32Array.of(10, 20, 30, 40)],
    ["head", Float32Array.of(0, 0)],
  ]);
  const results: ClientResult[] = [
    {
      device: 0,
      numSamples: 1,
      masks: new Map([[m.path, { a: Float32Array.of(1, 1, 0), b: Float32Array.of(1, 0) }]]),
      adapter: new Map([
        [m.a, Float32Array.of(100, 200, 3, 400, 500, 6)],
        [m.b, Float32Array.of(1000, 2000, 30, 40)],
        ["head", Float32Array.of(1, 2)],
      ]),
    },
    {
      device: 1,
      numSamples: 3,
      masks: new Map([[m.path, { a: Float32Array.of(1, 0, 0), b: Float32Array.of(1, 1) }]]),
      adapter: new Map([
        [m.a, Float32Array.of(-100, 2, 3, -400, 5, 6)],
        [m.b, Float32Array.of(-1000, -2000, -3000, -4000)],
        ["head", Float32Array.of(5, 6)],
      ]),
    },
  ];
  return { global, results, m };
}

Deno.test("keepers normalisation: hand-worked 2-device case; nobody-kept entries unchanged", () => {
  const { global, results, m } = handCase();
  const out = makeAggregator("fedavg").aggregate({
    global,
    modules: [m],
    scale: 2,
    results,
    normalisation: "keepers",
  });
  // A col 0 kept by both: .25·100 + .75·(−100) = −50, .25·400 + .75·(−400) = −200; col 1 only device 0;
  // col 2 nobody → global.
  deepStrictEqual([...out.adapter.get(m.a)!], [-50, 200, 3, -200, 500, 6]);
  // B row 0 both: −500, −1000; row 1 only device 1: −3000, −4000.
  deepStrictEqual([...out.adapter.get(m.b)!], [-500, -1000, -3000, -4000]);
  deepStrictEqual([...out.adapter.get("head")!], [4, 5]);
});

Deno.test("all normalisation: hand-worked 2-device case", () => {
  const { global, results, m } = handCase();
  const out = makeAggregator("fedavg").aggregate({
    global,
    modules: [m],
    scale: 2,
    results,
    normalisation: "all",
  });
  // A col 1: .25·200 + .75·2 = 51.5, .25·500 + .75·5 = 128.75; col 2 untouched by both → 3, 6.
  deepStrictEqual([...out.adapter.get(m.a)!], [-50, 51.5, 3, -200, 128.75, 6]);
  // B row 1: .25·30 + .75·(−3000) = −2242.5, .25·40 + .75·(−4000) = −2990.
  deepStrictEqual([...out.adapter.get(m.b)!], [-500, -1000, -2242.5, -2990]);
  deepStrictEqual([...out.adapter.get("head")!], [4, 5]);
});

Deno.test("ffa never changes A, averages B and head like fedavg", () => {
  const { global, results, m } = handCase();
  const ffa = makeAggregator("ffa");
  ok(ffa.freezesA);
  ok(!makeAggregator("fedavg").freezesA && !makeAggregator("fedex").freezesA);
  const out = ffa.aggregate({ global, modules: [m], scale: 2, results, normalisation: "keepers" });
  deepStrictEqual(out.adapter.get(m.a), global.get(m.a));
  notStrictEqual(out.adapter.get(m.a), global.get(m.a));
  deepStrictEqual([...out.adapter.get(m.b)!], [-500, -1000, -3000, -4000]);
  strictEqual(out.residual.size, 0);
  // Random case with dropout: A bit-identical to global.
  const g = randomAdapter(3);
  const res = makeResults(g, [10, 20], 0.3);
  const o2 = ffa.aggregate({
    global: g,
    modules: MODS.map((x) => x.m),
    scale: 1,
    results: res,
    normalisation: "all",
  });
  for (const { m } of MODS) deepStrictEqual(o2.adapter.get(m.a), g.get(m.a));
});

Deno.test("aggregate: clear errors on bad input", () => {
  const { global, results, m } = handCase();
  const agg = makeAggregator("fedex");
  const base = { global, modules: [m], scale: 2, results, normalisation: "keepers" as Normalisation };
  throws(() => agg.aggregate({ ...base, results: [] }), /no client results/);
  throws(
    () => agg.aggregate({ ...base, results: [{ ...results[0], numSamples: 0 }] }),
    /device 0 has numSamples 0/,
  );
  throws(
    () =>
      agg.aggregate({
        ...base,
        results: [{ ...results[0], adapter: new Map([["head", Float32Array.of(1, 2)]]) }],
      }),
    /device 0 lacks tensor "base_model.model.q.lora_A.weight"/,
  );
  throws(
    () =>
      agg.aggregate({
        ...base,
        results: [{
          ...results[0],
          masks: new Map([[m.path, { a: new Float32Array(2), b: new Float32Array(2) }]]),
        }],
      }),
    /mask a of "q" has length 2, expected nIn = 3/,
  );
  throws(() => agg.aggregate({ ...base, modules: [spec("q", 3, 3)] }), /not \[r, 3\] and \[3, r\]/);
  // deno-lint-ignore no-explicit-any
  throws(() => agg.aggregate({ ...base, normalisation: "none" as any }), /normalisation/);
  // deno-lint-ignore no-explicit-any
  throws(() => makeAggregator("fedprox" as any), /unknown aggregator/);
  throws(
    () => denseDelta({ left: new Float32Array(4), right: new Float32Array(6), q: 2 }, 3, 3),
    /denseDelta/,
  );
});
