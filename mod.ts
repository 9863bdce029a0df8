/**
 * fedlodrop: federated LoRA with row/column dropout (FedLoDrop) for RoBERTa on hand-written WGSL kernels.
 *
 * The public surface, one re-export per concept:
 * - model: {@link loadModel}, {@link loadTokenizer}, safetensors and config readers, the float64 reference;
 * - fl: masks, data splits, aggregators, byte accounting, the round loop;
 * - tasks: GLUE readers, the task registry, {@link glueMetrics}, {@link trainRun}, {@link runConfigs};
 * - opt: the resource/dropout optimiser;
 * - kernels: the WebGPU device, the recorder and the counter-based RNG.
 *
 * @example
 * ```ts
 * import { loadModel, loadTokenizer } from "./mod.ts";
 * const tok = await loadTokenizer("runs/models/tiny-seed0-labels2");
 * const model = await loadModel("runs/models/tiny-seed0-labels2", {
 *   numLabels: 2,
 *   lora: { r: 8, alpha: 16, targets: ["query", "value"] },
 * });
 * const ids = tok.encode("a fine film", undefined, { maxLength: 16 });
 * const logits = await model.forward({ inputIds: Int32Array.from(ids), batch: 1, seqLen: ids.length });
 * ```
 * @module
 */
import { type LoadOptions, RobertaModel } from "./model/roberta.ts";

export { getGpu, Gpu } from "./kernels/device.ts";
export { type Dispatch, type DispatchObserver, Recorder } from "./kernels/recorder.ts";
export { hashKey, keepKey, KeyedRandom, Purpose, RNG_WGSL, uniformKey } from "./kernels/rng.ts";

/**
 * The same class as {@link RobertaModel}, under a name that says it runs both encoder families (RoBERTa and
 * BERT, chosen by `model_type` in config.json).
 *
 * @example
 * ```ts
 * const model = await EncoderModel.load("models/minilm", { numLabels: 2, lora: { r: 8, alpha: 16, targets: ["query", "value"] } });
 * ```
 */
export { RobertaModel as EncoderModel } from "./model/roberta.ts";
export {
  DEFAULT_PACKED_WEIGHT_BUDGET,
  type LabelledInput,
  type LoadOptions,
  type ModelInput,
  type ModuleMasks,
  type PassOptions,
  RobertaModel,
  type StepOptions,
} from "./model/roberta.ts";
export { adapterConfig, peftTargetModules, saveAdapter } from "./model/adapter_export.ts";
export { type EncoderConfig, parseConfig, readConfig } from "./model/config.ts";
export { loadTokenizer, type Tokenizer } from "./model/tokenizer.ts";
export { loadWordPieceTokenizer, WordPieceTokenizer } from "./model/wordpiece.ts";
export {
  readSafetensors,
  SafetensorsFile,
  writeSafetensors,
  writeSafetensorsStreaming,
} from "./model/safetensors.ts";
export {
  BERT_HEAD_NAMES,
  HEAD_NAMES,
  headLayout,
  LORA_TARGETS,
  loraNames,
  loraScale,
  type LoraSettings,
  type LoraTarget,
  type ModelFamily,
  modulePath,
  moduleShape,
} from "./model/names.ts";
export { initAdapter, randomBase, refForward, refLossAndGrads } from "./model/reference.ts";
export { encodeExamples, makeBatch } from "./model/batch.ts";

export { drawMasks, type Masks, maskStats, type ModuleSpec } from "./fl/masks.ts";
export { parseSplit, splitData } from "./fl/split.ts";
export { type Aggregator, type AggregatorName, denseDelta, makeAggregator } from "./fl/aggregators.ts";
export { applyReturnedEntries, downlinkBytes, resetDropped, uplinkBytes } from "./fl/upload.ts";
export { DEFAULT_RUN, resolveRunConfig, type RunConfig } from "./fl/run_config.ts";
export { runRounds } from "./fl/federation.ts";
export { linearScheduleFactor, trainLocal } from "./fl/local_training.ts";
export { lengthSortedOrder, roundBatches, type RoundBatchOptions } from "./fl/batching.ts";
export { readMetrics, RunLog, summarizeRun } from "./fl/run_log.ts";

export { DEFAULT_DATA_DIR, type GlueExample, readGlueSplit } from "./tasks/glue.ts";
export { GLUE_TASK_NAMES, GLUE_TASKS, glueTask, type GlueTaskSpec } from "./tasks/registry.ts";
export { accuracy, f1Score, glueMetrics, matthewsCorrelation, pearson, spearman } from "./tasks/metrics.ts";
export { type RunSummaryFile, trainRun } from "./tasks/train_run.ts";
export { runConfigs, type RunPoolOptions } from "./tasks/run_pool.ts";
export { fetchModel, verifyModelDir } from "./tasks/fetch_model.ts";
export {
  createProfiler,
  type DispatchProfiler,
  KernelProfiler,
  type StepProfiler,
  summarize,
  type TimingMode,
} from "./kernels/profiler.ts";
export { SerialProfiler } from "./kernels/profiler_serial.ts";
export { profileFirstSteps } from "./tasks/profile.ts";

/**
 * Loads a Hugging Face RoBERTa or BERT folder (config.json + model.safetensors; the family from `model_type`) as
 * a sequence classifier with LoRA on the WebGPU device. `forward`, `lossAndGrads`, `getAdapter`/`setAdapter` and `saveAdapter` use peft's names.
 *
 * @example
 * ```ts
 * const model = await loadModel("models/roberta-large", { numLabels: 2, lora: { r: 8, alpha: 16, targets: ["query", "value"] } });
 * ```
 */
export function loadModel(dir: string, opts: LoadOptions): Promise<RobertaModel> {
  return RobertaModel.load(dir, opts);
}

export { loadScenario, loraSizes, parseScenario, type Scenario } from "./opt/scenario.ts";
export { boundObjective } from "./opt/bound.ts";
export { minBandwidth } from "./opt/system_model.ts";
export { buildProblem } from "./opt/problem.ts";
export { solveBnb } from "./opt/bnb.ts";
export { solvePsca } from "./opt/psca.ts";
export { checkAllocation } from "./opt/checker.ts";
export { type Plan, readPlan, writePlan } from "./opt/plan.ts";
export { optimize } from "./opt/solve.ts";
