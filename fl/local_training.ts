/**
 * One device's local training in one round: fresh AdamW, linear warm-up then linear decay to 0 over the
 * round's steps (Hugging Face's `get_linear_schedule_with_warmup`), batches from `roundBatches` (data order
 * drawn from (seed, round, device, epoch)), dropout masks from (seed, round, device, step).
 * @module
 */
import { hashKey } from "../kernels/rng.ts";
import type { ModuleMasks, RobertaModel } from "../model/roberta.ts";
import { type EncodedExample, makeBatch } from "../model/batch.ts";
import type { StepProfiler } from "../kernels/profiler.ts";
import { roundBatches } from "./batching.ts";

/** Settings of one device's round. */
export interface LocalTrainingOptions {
  seed: number;
  round: number;
  device: number;
  /** Passes over the data per round (when `steps` is null or absent). */
  epochs: number;
  /** Optimiser steps per round instead of full passes (see `roundBatches`); null or absent: `epochs` passes. */
  steps?: number | null;
  batch: number;
  /** Batch examples of similar length together (less padding; see `roundBatches`). */
  groupByLength?: boolean;
  lr: number;
  warmupRatio: number;
  weightDecay: number;
  /** FedLoDrop masks in `subadapter` mode (undefined: train every entry). */
  masks?: ModuleMasks;
  /** FFA-LoRA: A stays fixed. */
  freezeA?: boolean;
  /** Called after every step (progress reporting). */
  onStep?: (step: number, total: number, loss: number) => void;
  /**
   * Kernel profiler hook: called around every step on the model's recorder (it decides which steps to
   * profile, e.g. `profileFirstSteps` in tasks/profile.ts profiles the first N).
   */
  profiler?: StepProfiler;
}

/** Learning-rate factor of 0-based step `s` of `total` with `warmup` warm-up steps (HF linear schedule). */
export function linearScheduleFactor(s: number, total: number, warmup: number): number {
  if (s < warmup) return s / Math.max(1, warmup);
  return Math.max(0, (total - s) / Math.max(1, total - warmup));
}

/**
 * Trains the model's current adapter on `data` (this device's examples); returns the mean training loss.
 * The adapter stays on the device; the caller reads it back once at the end of the round.
 */
export async function trainLocal(
  model: RobertaModel,
  data: readonly EncodedExample[],
  padId: number,
  o: LocalTrainingOptions,
): Promise<{ meanLoss: number; steps: number; tokens: number }> {
  model.resetOptimizer();
  model.setMasks(o.masks);
  const batches = roundBatches(data.map((e) => e.ids.length), {
    seed: o.seed,
    round: o.round,
    device: o.device,
    epochs: o.epochs,
    steps: o.steps ?? null,
    batch: o.batch,
    groupByLength: o.groupByLength ?? false,
  });
  const total = batches.length;
  const warmup = Math.ceil(o.warmupRatio * total);
  let step = 0, lossSum = 0, tokens = 0;
  for (const indices of batches) {
    const batch = makeBatch(data, indices, padId);
    const options = {
      lr: o.lr * linearScheduleFactor(step, total, warmup),
      step: step + 1,
      weightDecay: o.weightDecay,
      freezeA: o.freezeA,
      dropoutStream: hashKey(o.round, o.device, step),
    };
    let loss: number;
    if (o.profiler) {
      const rec = model.recorder;
      o.profiler.beforeStep(rec);
      try {
        loss = await model.trainStep(batch, options);
      } catch (e) {
        await o.profiler.afterStep(rec, true);
        throw e;
      }
      await o.profiler.afterStep(rec);
    } else {
      loss = await model.trainStep(batch, options);
    }
    if (!Number.isFinite(loss)) {
      throw new Error(`device ${o.device}, round ${o.round}, step ${step}: training loss is ${loss}`);
    }
    lossSum += loss;
    tokens += batch.tokens;
    step++;
    o.onStep?.(step, total, loss);
  }
  return { meanLoss: lossSum / step, steps: step, tokens };
}
