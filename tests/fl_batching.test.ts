/**
 * The batches of a device's round (`roundBatches`): full passes reproduce the plain shuffled slices, a step
 * budget takes fresh passes as needed, length grouping keeps each pass's examples and cuts padding; and the
 * length-sorted evaluation order.
 */
import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { lengthSortedOrder, roundBatches, type RoundBatchOptions } from "../fl/batching.ts";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";

/** Lengths like SST-2's phrases: mostly short, a long tail. */
function lengths(n: number, seed: number): number[] {
  const r = new KeyedRandom([seed, 77]);
  return Array.from({ length: n }, () => 3 + Math.floor(60 * r.uniform() ** 3));
}

const base: RoundBatchOptions = {
  seed: 5,
  round: 2,
  device: 1,
  epochs: 3,
  steps: null,
  batch: 8,
  groupByLength: false,
};

/** The pass's shuffle, as local training drew it before batching had its own module. */
function shuffled(n: number, o: RoundBatchOptions, epoch: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  new KeyedRandom([o.seed, Purpose.data, o.round, o.device, epoch]).shuffle(order);
  return order;
}

function paddedTokens(batches: number[][], len: number[]): number {
  return batches.reduce((s, b) => s + b.length * Math.max(...b.map((i) => len[i])), 0);
}

Deno.test("roundBatches: full passes are consecutive slices of each pass's shuffle", () => {
  const len = lengths(37, 1);
  const got = roundBatches(len, base);
  const want: number[][] = [];
  for (let e = 0; e < 3; e++) {
    const order = shuffled(37, base, e);
    for (let s = 0; s < 37; s += 8) want.push(order.slice(s, s + 8));
  }
  deepStrictEqual(got, want);
  strictEqual(got.length, 15);
  strictEqual(got[4].length, 5, "the last batch of a pass holds the rest");
});

Deno.test("roundBatches: a step budget takes part of a pass, or several passes", () => {
  const len = lengths(37, 2);
  const few = roundBatches(len, { ...base, steps: 2 });
  deepStrictEqual(few, [shuffled(37, base, 0).slice(0, 8), shuffled(37, base, 0).slice(8, 16)]);
  const many = roundBatches(len, { ...base, steps: 7 });
  strictEqual(many.length, 7);
  // 5 batches of pass 0 (the last one short), then the first 2 of pass 1.
  deepStrictEqual(many.slice(0, 5).flat().sort((a, b) => a - b), Array.from({ length: 37 }, (_, i) => i));
  deepStrictEqual(many.slice(5), [shuffled(37, base, 1).slice(0, 8), shuffled(37, base, 1).slice(8, 16)]);
  // Another round draws other examples.
  notDeepStrictEqual(roundBatches(len, { ...base, steps: 2, round: 3 }), few);
});

Deno.test("roundBatches: grouping by length keeps each pass's examples, pads less, and is seeded", () => {
  const len = lengths(400, 3);
  for (const steps of [null, 20, 70]) {
    const o = { ...base, steps };
    const plain = roundBatches(len, o);
    const grouped = roundBatches(len, { ...o, groupByLength: true });
    strictEqual(grouped.length, plain.length, `steps ${steps}`);
    // Same examples in every pass (the round's steps cut each pass at the same place).
    let at = 0;
    for (let e = 0; at < plain.length; e++) {
      const stepsInPass = Math.min(plain.length - at, Math.ceil(400 / 8));
      const sorted = (bs: number[][]) => bs.flat().sort((a, b) => a - b);
      deepStrictEqual(sorted(grouped.slice(at, at + stepsInPass)), sorted(plain.slice(at, at + stepsInPass)));
      at += stepsInPass;
    }
    ok(grouped.every((b) => b.length === 8), "400 examples fill every batch");
    const ratio = paddedTokens(grouped, len) / paddedTokens(plain, len);
    ok(ratio < 0.7, `steps ${steps}: grouped batches pad to ${ratio.toFixed(2)} of the plain ones' tokens`);
    deepStrictEqual(roundBatches(len, { ...o, groupByLength: true }), grouped, "same seed, same batches");
    notDeepStrictEqual(roundBatches(len, { ...o, seed: 6, groupByLength: true }), grouped);
  }
  // A round cut short uses exactly the first examples of its shuffle (grouping only batches them).
  deepStrictEqual(
    roundBatches(len, { ...base, steps: 10, groupByLength: true }).flat().sort((a, b) => a - b),
    shuffled(400, base, 0).slice(0, 80).sort((a, b) => a - b),
  );
  // The batches are shuffled after grouping, not longest first through the pass (one mega-batch of 50 batches:
  // no rise at all without the shuffle).
  const maxima = roundBatches(len, { ...base, epochs: 1, groupByLength: true }).map((b) =>
    Math.max(...b.map((i) => len[i]))
  );
  const rises = maxima.filter((m, i) => i > 0 && m > maxima[i - 1]).length;
  ok(rises >= 12, `${rises} rises in the batch maxima ${maxima.join(" ")}`);
  // A short last batch (37 examples) stays one batch of the rest.
  const odd = roundBatches(lengths(37, 4), { ...base, epochs: 1, groupByLength: true });
  deepStrictEqual(odd.map((b) => b.length).sort((a, b) => a - b), [5, 8, 8, 8, 8]);
});

Deno.test("roundBatches: no examples is a clear error", () => {
  let msg = "";
  try {
    roundBatches([], base);
  } catch (e) {
    msg = (e as Error).message;
  }
  ok(/device 1 has no training examples/.test(msg), msg);
});

Deno.test("lengthSortedOrder: shortest first, ties in data order", () => {
  deepStrictEqual(lengthSortedOrder([7, 3, 7, 1, 3]), [3, 1, 4, 0, 2]);
  deepStrictEqual(lengthSortedOrder([]), []);
});
