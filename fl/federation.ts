/**
 * The FedLoDrop round loop (../shared/spec/fedlodrop.md): simulated devices run one after another on one
 * WebGPU device, each on its share of the task's training set. Per round: participants and their γ_k, masks,
 * sub-adapters, local training, sparse upload (bytes counted), aggregation, evaluation on the dev set and on a
 * fixed training subsample, logging, and an atomic checkpoint.
 * @module
 */
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import type { RobertaModel } from "../model/roberta.ts";
import type { EncodedExample } from "../model/batch.ts";
import { makeAggregator } from "./aggregators.ts";
import { type CheckpointState, writeCheckpoint } from "./checkpoint.ts";
import { evaluate } from "./evaluate.ts";
import { trainLocal } from "./local_training.ts";
import { drawMasks, type Masks, maskStats, type ModuleSpec } from "./masks.ts";
import { gammasForRound, type RunConfig } from "./run_config.ts";
import type { RunLog } from "./run_log.ts";
import type { StepProfiler } from "../kernels/profiler.ts";
import { applyReturnedEntries, downlinkBytes, resetDropped, uplinkBytes } from "./upload.ts";

/** Simulated cost of a device's round from a resource plan. */
export interface DeviceCost {
  latency_s: number;
  energy_j: number;
  bandwidth_hz?: number;
}

/** Everything the loop works on (prepared by the caller). */
export interface Federation {
  cfg: RunConfig;
  runDir: string;
  model: RobertaModel;
  padId: number;
  /** Training examples of each device. */
  deviceData: EncodedExample[][];
  dev: EncodedExample[];
  trainEval: EncodedExample[];
  log: RunLog;
  /** The task's metrics of predictions (class ids, or scores for regression) against labels. */
  score: (predictions: Float64Array, labels: number[]) => Record<string, number>;
  /** Key of the main metric in `score`'s result (train/dev gap and best round use it). */
  mainMetric: string;
  /** Per-device γ and simulated cost from a plan (overrides cfg.gamma). */
  plan?: { gamma: number[]; cost: DeviceCost[] };
  /** Progress lines (stderr by default). */
  progress?: (line: string) => void;
  /** Kernel profiler passed to every device's local training (it picks the steps it profiles). */
  profiler?: StepProfiler;
}

/** One round's summary, as logged. */
export interface RoundResult {
  round: number;
  dev: Record<string, number>;
  devLoss: number;
  train: Record<string, number>;
  trainLoss: number;
  bytesUp: number;
  bytesDown: number;
  seconds: number;
}

/** The adapted modules in the model's fixed order. */
export function moduleSpecs(model: RobertaModel): ModuleSpec[] {
  return model.modules.map((m) => ({ path: m.path, nOut: m.nOut, nIn: m.nIn, a: m.a.name, b: m.b.name }));
}

/** Devices taking part in round t (all, or a seeded subset of ⌈fraction·K⌉). */
export function participants(seed: number, round: number, devices: number, fraction: number): number[] {
  const all = Array.from({ length: devices }, (_, i) => i);
  if (fraction >= 1) return all;
  const n = Math.max(1, Math.ceil(fraction * devices));
  new KeyedRandom([seed, Purpose.participation, round]).shuffle(all);
  return all.slice(0, n).sort((a, b) => a - b);
}

/** Runs rounds `startRound … cfg.rounds-1` from the given global adapter; returns every round's result. */
export async function runRounds(
  f: Federation,
  global: Map<string, Float32Array>,
  startRound: number,
  residualRanks = new Map<string, number>(),
): Promise<RoundResult[]> {
  const { cfg, model } = f;
  const progress = f.progress ?? ((l: string) => console.error(l));
  const modules = moduleSpecs(model);
  const aggregator = makeAggregator(cfg.aggregator);
  const headParams = [...global].filter(([k]) => k.includes(".classifier.")).reduce(
    (s, [, v]) => s + v.length,
    0,
  );
  const shapes = model.adapterShapes;
  const results: RoundResult[] = [];
  const main = f.mainMetric;
  const started = performance.now();
  for (let round = startRound; round < cfg.rounds; round++) {
    const t0 = performance.now();
    const gammas = f.plan?.gamma ?? gammasForRound(cfg, round);
    const who = participants(cfg.seed, round, cfg.devices, cfg.participation);
    const returned = [];
    let bytesUp = 0, bytesDown = 0, lossSum = 0, stepSum = 0;
    for (const k of who) {
      const masks: Masks = drawMasks({
        seed: cfg.seed,
        round,
        device: k,
        modules,
        gamma: gammas[k],
        kind: cfg.mask,
      });
      const subadapter = cfg.mode === "subadapter";
      model.setAdapter(subadapter ? global : resetDropped(global, masks, modules));
      const td = performance.now();
      const res = await trainLocal(model, f.deviceData[k], f.padId, {
        seed: cfg.seed,
        round,
        device: k,
        epochs: cfg.localEpochs,
        steps: cfg.localSteps,
        batch: cfg.batch,
        groupByLength: cfg.groupByLength,
        lr: cfg.lr,
        warmupRatio: cfg.warmupRatio,
        weightDecay: cfg.weightDecay,
        masks: subadapter ? masks : undefined,
        freezeA: aggregator.freezesA,
        profiler: f.profiler,
        onStep: (s, total, loss) => {
          if (s === total || s % 10 === 0) {
            const done = (performance.now() - started) / 1000;
            const frac = (round - startRound + (who.indexOf(k) + s / total) / who.length) /
              (cfg.rounds - startRound);
            const eta = frac > 0 ? done / frac - done : NaN;
            progress(
              `round ${round + 1}/${cfg.rounds} device ${k + 1}/${cfg.devices} step ${s}/${total} loss ${
                loss.toFixed(4)
              } ETA ${formatSeconds(eta)}`,
            );
          }
        },
      });
      const trained = await model.getAdapter();
      // In reset mode every entry was trained and is sent; in sub-adapter mode only the kept entries.
      const sent = subadapter ? masks : new Map();
      const adapter = subadapter ? applyReturnedEntries(global, trained, masks, modules) : trained;
      // The downlink always carries the sub-adapter (kept parts + mask seed; in reset mode the device zeroes the
      // dropped parts itself); the uplink of reset mode carries every entry, as the reference code sends it.
      const traffic = { modules, r: cfg.rank, headParams, includeA: !aggregator.freezesA };
      const up = uplinkBytes({ ...traffic, masks: sent }).total;
      const down = downlinkBytes({ ...traffic, masks, residualRanks }).total;
      bytesUp += up;
      bytesDown += down;
      lossSum += res.meanLoss * res.steps;
      stepSum += res.steps;
      returned.push({ device: k, numSamples: f.deviceData[k].length, adapter, masks: sent });
      const stats = maskStats(masks);
      f.log.deviceRound({
        round,
        device: k,
        gamma: gammas[k],
        keptA: stats.a,
        keptB: stats.b,
        samples: f.deviceData[k].length,
        steps: res.steps,
        trainLoss: res.meanLoss,
        bytesUp: up,
        bytesDown: down,
        seconds: (performance.now() - td) / 1000,
        tokensPerSecond: res.tokens / ((performance.now() - td) / 1000),
        ...(f.plan ? { simLatency_s: f.plan.cost[k].latency_s, simEnergy_j: f.plan.cost[k].energy_j } : {}),
      });
    }
    const agg = aggregator.aggregate({
      global,
      modules,
      scale: model.scale,
      results: returned,
      normalisation: cfg.normalisation,
    });
    for (const [path, r] of agg.residual) model.mergeResidual(path, r.left, r.right, r.q);
    residualRanks = new Map([...agg.residual].map(([p, r]) => [p, r.q]));
    global = agg.adapter;
    model.setAdapter(global);
    const dev = await evaluate(model, f.score, f.dev, f.padId, cfg.evalBatch);
    const tr = await evaluate(model, f.score, f.trainEval, f.padId, cfg.evalBatch);
    const seconds = (performance.now() - t0) / 1000;
    const result: RoundResult = {
      round,
      dev: dev.metrics,
      devLoss: dev.loss,
      train: tr.metrics,
      trainLoss: lossSum / stepSum,
      bytesUp,
      bytesDown,
      seconds,
    };
    results.push(result);
    await f.log.round({
      round,
      dev: dev.metrics,
      devLoss: dev.loss,
      trainEval: tr.metrics,
      trainEvalLoss: tr.loss,
      trainLoss: result.trainLoss,
      gap: tr.metrics[main] - dev.metrics[main],
      participants: who,
      gammas: who.map((k) => gammas[k]),
      bytesUp,
      bytesDown,
      seconds,
    });
    const baseWeights = new Map<string, Float32Array>();
    if (cfg.aggregator === "fedex") {
      for (const m of modules) baseWeights.set(`${m.path}.weight`, await model.readModuleWeight(m.path));
    }
    const state: CheckpointState = { round, adapter: global, baseWeights, residualRanks };
    const ckShapes = new Map(shapes);
    for (const m of modules) ckShapes.set(`${m.path}.weight`, [m.nOut, m.nIn]);
    await writeCheckpoint(f.runDir, state, ckShapes);
  }
  return results;
}

/** `1m05s`-style duration. */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s - 60 * m)).padStart(2, "0")}s` : `${s.toFixed(0)}s`;
}
