import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { parseSplit, splitClasses, splitData } from "../fl/split.ts";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";

/** Balanced labels 0..classes-1, shuffled with a seeded stream. */
function labelsOf(n: number, classes: number, seed: number): number[] {
  const l = Array.from({ length: n }, (_, i) => i % classes);
  new KeyedRandom([seed, Purpose.test]).shuffle(l);
  return l;
}

function assertPartition(parts: number[][], n: number, exhaustive: boolean): void {
  const seen = new Set<number>();
  for (const p of parts) {
    for (const i of p) {
      ok(Number.isInteger(i) && i >= 0 && i < n, `index ${i} out of range`);
      ok(!seen.has(i), `index ${i} given to two devices`);
      seen.add(i);
    }
    for (let j = 1; j < p.length; j++) ok(p[j - 1] < p[j], "device lists must be sorted");
  }
  if (exhaustive) strictEqual(seen.size, n, "every example must be assigned");
}

/** Mean over devices of the largest label share on that device. */
function meanMaxShare(parts: number[][], labels: number[], classes: number): number {
  let s = 0;
  for (const p of parts) {
    const c = new Array(classes).fill(0);
    for (const i of p) c[labels[i]]++;
    s += Math.max(...c) / p.length;
  }
  return s / parts.length;
}

Deno.test("splitData iid: partition, every device ≥ minimum, deterministic per seed, roughly balanced", () => {
  const labels = labelsOf(900, 2, 1);
  const a = splitData({ labels, devices: 3, kind: "iid", seed: 7 });
  assertPartition(a, 900, true);
  for (const p of a) ok(p.length >= 10 && Math.abs(p.length - 300) < 60, `device size ${p.length}`);
  deepStrictEqual(a, splitData({ labels, devices: 3, kind: "iid", seed: 7 }));
  notDeepStrictEqual(a, splitData({ labels, devices: 3, kind: "iid", seed: 8 }));
  // iid keeps label proportions close to the global 50/50.
  ok(meanMaxShare(a, labels, 2) < 0.58);
});

Deno.test("splitData iid: redraws until minPerDevice is met", () => {
  // 40 examples, 4 devices, minimum 8: many single draws fail, the redraw must succeed.
  const labels = labelsOf(40, 2, 2);
  const parts = splitData({ labels, devices: 4, kind: "iid", seed: 3, minPerDevice: 8 });
  assertPartition(parts, 40, true);
  for (const p of parts) ok(p.length >= 8);
});

Deno.test("splitData dirichlet: minimum honoured, small α skews labels, large α does not", () => {
  const classes = 4;
  const labels = labelsOf(2000, classes, 3);
  let skewSmall = 0, skewLarge = 0;
  const seeds = [1, 2, 3, 4];
  for (const seed of seeds) {
    const small = splitData({ labels, devices: 5, kind: { dirichlet: 0.1 }, seed, minPerDevice: 20 });
    const large = splitData({ labels, devices: 5, kind: { dirichlet: 100 }, seed, minPerDevice: 20 });
    assertPartition(small, 2000, true);
    assertPartition(large, 2000, true);
    for (const p of [...small, ...large]) ok(p.length >= 20, `device with ${p.length} < 20 examples`);
    skewSmall += meanMaxShare(small, labels, classes) / seeds.length;
    skewLarge += meanMaxShare(large, labels, classes) / seeds.length;
  }
  // Balanced 4 classes: uniform shares give max share ≈ 0.25-0.3; α = 0.1 concentrates devices on few labels.
  ok(skewLarge < 0.33, `α=100 mean max-label share ${skewLarge}`);
  ok(skewSmall > 0.6, `α=0.1 mean max-label share ${skewSmall}`);
  const again = splitData({ labels, devices: 5, kind: { dirichlet: 0.1 }, seed: 1, minPerDevice: 20 });
  deepStrictEqual(
    again,
    splitData({ labels, devices: 5, kind: { dirichlet: 0.1 }, seed: 1, minPerDevice: 20 }),
  );
});

Deno.test("splitData dirichlet: regression scores are bucketed; impossible minimum gives a clear error", () => {
  const r = new KeyedRandom([5, Purpose.test]);
  const scores = Array.from({ length: 300 }, () => 5 * r.uniform());
  const parts = splitData({ labels: scores, devices: 3, kind: { dirichlet: 1 }, seed: 2, regression: true });
  assertPartition(parts, 300, true);
  deepStrictEqual(splitClasses([0, 1, 2.5, 4.99, 5], true), [0, 1, 2, 4, 4]);
  deepStrictEqual(splitClasses([3, 3], true), [0, 0]);
  throws(() => splitData({ labels: scores, devices: 3, kind: "iid", seed: 1 }), /labels\[0\].*regression/);
  throws(
    () =>
      splitData({
        labels: labelsOf(100, 2, 1),
        devices: 4,
        kind: { dirichlet: 0.01 },
        seed: 1,
        minPerDevice: 24,
        maxTries: 20,
      }),
    /in 20 tries/,
  );
  throws(() => splitData({ labels: labelsOf(30, 2, 1), devices: 4, kind: "iid", seed: 1 }), /minPerDevice/);
});

Deno.test("splitData sizes: sizes honoured exactly, disjoint, deterministic; errors on bad sizes", () => {
  const labels = labelsOf(100, 3, 4);
  const parts = splitData({ labels, devices: 3, kind: { sizes: [10, 25, 60] }, seed: 1 });
  deepStrictEqual(parts.map((p) => p.length), [10, 25, 60]);
  assertPartition(parts, 100, false);
  deepStrictEqual(parts, splitData({ labels, devices: 3, kind: { sizes: [10, 25, 60] }, seed: 1 }));
  notDeepStrictEqual(parts, splitData({ labels, devices: 3, kind: { sizes: [10, 25, 60] }, seed: 2 }));
  throws(() => splitData({ labels, devices: 3, kind: { sizes: [50, 30, 21] }, seed: 1 }), /sum to 101/);
  throws(() => splitData({ labels, devices: 2, kind: { sizes: [50, 30, 20] }, seed: 1 }), /expected 2/);
  throws(() => splitData({ labels, devices: 3, kind: { sizes: [50, 0, 20] }, seed: 1 }), /sizes\[1\]/);
});

Deno.test("parseSplit: accepted forms and clear errors", () => {
  strictEqual(parseSplit("iid"), "iid");
  deepStrictEqual(parseSplit("dirichlet:0.5"), { dirichlet: 0.5 });
  deepStrictEqual(parseSplit(" sizes:100, 200,300 "), { sizes: [100, 200, 300] });
  throws(() => parseSplit("dirichlet:"), /concentration/);
  throws(() => parseSplit("dirichlet:-1"), /concentration/);
  throws(() => parseSplit("sizes:1,x"), /positive integers/);
  throws(() => parseSplit("sizes:1.5"), /positive integers/);
  throws(() => parseSplit("random"), /expected "iid"/);
});
