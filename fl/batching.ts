/**
 * Which examples form each local step of a device's round, and in which order evaluation visits examples.
 *
 * A round runs `epochs` passes over the device's data, each in the order of a fresh shuffle keyed by (seed,
 * round, device, epoch); with `steps` it instead stops after that many steps, drawing epoch after epoch as
 * needed, so a round may use part of the data (the first examples of the round's shuffle) or several passes.
 * With `groupByLength`, the examples a round uses are the same, but they are batched with others of similar
 * length, which cuts padding (Hugging Face's `group_by_length`, `get_length_grouped_indices`): the shuffled
 * examples are cut into mega-batches of 50 batches, each sorted by length, longest first, and cut into batches;
 * the batches are then shuffled. Hugging Face uses fewer batches per mega-batch on small sets (a quarter of
 * the set at most) and keeps the batches longest first within each mega-batch; here the examples a round uses
 * are drawn before grouping, so grouping never changes which examples a round sees, only how they are batched.
 * @module
 */
import { KeyedRandom, Purpose } from "../kernels/rng.ts";

/** What decides a device's batches in one round. */
export interface RoundBatchOptions {
  seed: number;
  round: number;
  device: number;
  /** Passes over the data (used when `steps` is null). */
  epochs: number;
  /** Optimiser steps of the round, or null for `epochs` full passes. */
  steps: number | null;
  batch: number;
  /** Batch examples of similar length together. */
  groupByLength: boolean;
}

/**
 * Indices of the examples of every step of a round (in step order). Every batch has `batch` examples except
 * one in each pass that uses all the data, which holds the rest (the pass's last batch without grouping).
 * Without `groupByLength` and with `steps` null, the batches are consecutive slices of each pass's shuffle.
 *
 * @example
 * ```ts
 * const lengths = [12, 5, 40, 7, 9];
 * const steps = roundBatches(lengths, { seed: 0, round: 0, device: 1, epochs: 2, steps: null, batch: 2, groupByLength: true });
 * // 6 steps: 3 per pass, one of each pass with a single example
 * ```
 */
export function roundBatches(lengths: readonly number[], o: RoundBatchOptions): number[][] {
  const n = lengths.length;
  if (n === 0) throw new Error(`device ${o.device} has no training examples`);
  const total = o.steps ?? o.epochs * Math.ceil(n / o.batch);
  const out: number[][] = [];
  for (let epoch = 0; out.length < total; epoch++) {
    const order = Array.from({ length: n }, (_, i) => i);
    new KeyedRandom([o.seed, Purpose.data, o.round, o.device, epoch]).shuffle(order);
    const used = order.slice(0, Math.min(n, (total - out.length) * o.batch));
    const batches = o.groupByLength
      ? lengthGroupedBatches(
        used,
        lengths,
        o.batch,
        new KeyedRandom([o.seed, Purpose.data, o.round, o.device, epoch, 1]),
      )
      : slices(used, o.batch);
    out.push(...batches);
  }
  return out;
}

function slices(order: readonly number[], batch: number): number[][] {
  const out: number[][] = [];
  for (let s = 0; s < order.length; s += batch) out.push(order.slice(s, s + batch));
  return out;
}

/** Mega-batches of 50 batches (Hugging Face's default), each sorted and cut, then all batches shuffled. */
function lengthGroupedBatches(
  order: readonly number[],
  lengths: readonly number[],
  batch: number,
  rng: KeyedRandom,
): number[][] {
  const mega = 50 * batch;
  const out: number[][] = [];
  for (let s = 0; s < order.length; s += mega) {
    // Longest first; ties keep the shuffle's order (Array.prototype.sort is stable).
    const group = order.slice(s, s + mega).sort((a, b) => lengths[b] - lengths[a]);
    out.push(...slices(group, batch));
  }
  rng.shuffle(out);
  return out;
}

/**
 * The order in which evaluation visits examples: by length (shortest first, ties in data order), so that each
 * evaluation batch pads little. Metrics do not depend on the order; the caller puts results back in data order.
 *
 * @example
 * ```ts
 * lengthSortedOrder([7, 3, 7, 1]); // [3, 1, 0, 2]
 * ```
 */
export function lengthSortedOrder(lengths: readonly number[]): number[] {
  return Array.from({ length: lengths.length }, (_, i) => i).sort((a, b) => lengths[a] - lengths[b]);
}
