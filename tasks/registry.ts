/**
 * The GLUE task registry: one entry per task says where its files are, how they are laid out, what the
 * labels mean and how the task is scored. Adding a task is adding one entry to {@link GLUE_TASKS}.
 *
 * @example
 * ```ts
 * import { glueTask } from "./registry.ts";
 * const rte = glueTask("rte");
 * rte.folder; // "RTE"
 * rte.labelValues; // ["entailment", "not_entailment"] (file value -> class id by position)
 * rte.mainMetric; // "accuracy"
 * ```
 * @module
 */

/** Lower-case task names, as the reference code and Hugging Face `datasets` call them. */
export type GlueTaskName = "cola" | "sst2" | "mrpc" | "stsb" | "qnli" | "rte" | "qqp" | "mnli" | "wnli";

/** Split names. `dev_mismatched` exists only for MNLI (its `dev` is the matched dev set). */
export type GlueSplit = "train" | "dev" | "dev_mismatched";

/** Metric names produced by `glueMetrics` (see tasks/metrics.ts). */
export type GlueMetricName = "accuracy" | "f1" | "mcc" | "pearson" | "spearman";

/** How one split's TSV file is laid out. */
export interface GlueFileLayout {
  /** File name inside the task folder, e.g. `"dev_matched.tsv"`. */
  file: string;
  /** Number of tab-separated columns every line (header and rows) must have. */
  columns: number;
}

/** Everything the readers, the model head and the evaluation need to know about one GLUE task. */
export interface GlueTaskSpec {
  /** Lower-case registry key. */
  name: GlueTaskName;
  /** Folder name in the original GLUE layout (`<DIR>/<folder>/train.tsv`), e.g. `"SST-2"`. */
  folder: string;
  /** Layout of each split the task has (train and dev at least). */
  splits: Partial<Record<GlueSplit, GlueFileLayout>>;
  /**
   * Column names. For files with a header line these are looked up in the header; for header-less files
   * (CoLA) they are the names given to the fixed columns by {@link GlueTaskSpec.headerless}.
   */
  textColumns: readonly [string] | readonly [string, string];
  /** Name of the label column (the score column for STS-B). */
  labelColumn: string;
  /** For files without a header line: the names of the columns in order (the file's column count). */
  headerless?: readonly string[];
  /** `true` for STS-B: the label is a float score in [scoreRange[0], scoreRange[1]] and the head has one output. */
  regression: boolean;
  /** Valid score range for a regression task (inclusive). */
  scoreRange?: readonly [number, number];
  /** Number of model outputs: the number of classes, or 1 for regression. */
  numLabels: number;
  /** The label strings as they appear in the file; the class id is the position. Empty for regression. */
  labelValues: readonly string[];
  /** Human-readable class names in class-id order (Hugging Face `datasets` glue names). Empty for regression. */
  labelNames: readonly string[];
  /** Metrics reported for the task, in display order. */
  metrics: readonly GlueMetricName[];
  /** The metric used to pick the best checkpoint and to report the task score. */
  mainMetric: GlueMetricName;
}

const TRAIN_DEV = (columns: number): Partial<Record<GlueSplit, GlueFileLayout>> => ({
  train: { file: "train.tsv", columns },
  dev: { file: "dev.tsv", columns },
});

/** The registry itself, keyed by lower-case task name. */
export const GLUE_TASKS: Readonly<Record<GlueTaskName, GlueTaskSpec>> = {
  cola: {
    name: "cola",
    folder: "CoLA",
    splits: TRAIN_DEV(4),
    headerless: ["source", "label", "judgment", "sentence"],
    textColumns: ["sentence"],
    labelColumn: "label",
    regression: false,
    numLabels: 2,
    labelValues: ["0", "1"],
    labelNames: ["unacceptable", "acceptable"],
    metrics: ["mcc", "accuracy"],
    mainMetric: "mcc",
  },
  sst2: {
    name: "sst2",
    folder: "SST-2",
    splits: TRAIN_DEV(2),
    textColumns: ["sentence"],
    labelColumn: "label",
    regression: false,
    numLabels: 2,
    labelValues: ["0", "1"],
    labelNames: ["negative", "positive"],
    metrics: ["accuracy"],
    mainMetric: "accuracy",
  },
  mrpc: {
    name: "mrpc",
    folder: "MRPC",
    splits: TRAIN_DEV(5),
    textColumns: ["#1 String", "#2 String"],
    labelColumn: "Quality",
    regression: false,
    numLabels: 2,
    labelValues: ["0", "1"],
    labelNames: ["not_equivalent", "equivalent"],
    metrics: ["accuracy", "f1"],
    mainMetric: "accuracy",
  },
  stsb: {
    name: "stsb",
    folder: "STS-B",
    splits: TRAIN_DEV(10),
    textColumns: ["sentence1", "sentence2"],
    labelColumn: "score",
    regression: true,
    scoreRange: [0, 5],
    numLabels: 1,
    labelValues: [],
    labelNames: [],
    metrics: ["pearson", "spearman"],
    mainMetric: "pearson",
  },
  qnli: {
    name: "qnli",
    folder: "QNLI",
    splits: TRAIN_DEV(4),
    textColumns: ["question", "sentence"],
    labelColumn: "label",
    regression: false,
    numLabels: 2,
    labelValues: ["entailment", "not_entailment"],
    labelNames: ["entailment", "not_entailment"],
    metrics: ["accuracy"],
    mainMetric: "accuracy",
  },
  rte: {
    name: "rte",
    folder: "RTE",
    splits: TRAIN_DEV(4),
    textColumns: ["sentence1", "sentence2"],
    labelColumn: "label",
    regression: false,
    numLabels: 2,
    labelValues: ["entailment", "not_entailment"],
    labelNames: ["entailment", "not_entailment"],
    metrics: ["accuracy"],
    mainMetric: "accuracy",
  },
  qqp: {
    name: "qqp",
    folder: "QQP",
    splits: TRAIN_DEV(6),
    textColumns: ["question1", "question2"],
    labelColumn: "is_duplicate",
    regression: false,
    numLabels: 2,
    labelValues: ["0", "1"],
    labelNames: ["not_duplicate", "duplicate"],
    metrics: ["accuracy", "f1"],
    mainMetric: "accuracy",
  },
  mnli: {
    name: "mnli",
    folder: "MNLI",
    splits: {
      train: { file: "train.tsv", columns: 12 },
      dev: { file: "dev_matched.tsv", columns: 16 },
      dev_mismatched: { file: "dev_mismatched.tsv", columns: 16 },
    },
    textColumns: ["sentence1", "sentence2"],
    labelColumn: "gold_label",
    regression: false,
    numLabels: 3,
    labelValues: ["entailment", "neutral", "contradiction"],
    labelNames: ["entailment", "neutral", "contradiction"],
    metrics: ["accuracy"],
    mainMetric: "accuracy",
  },
  wnli: {
    name: "wnli",
    folder: "WNLI",
    splits: TRAIN_DEV(4),
    textColumns: ["sentence1", "sentence2"],
    labelColumn: "label",
    regression: false,
    numLabels: 2,
    labelValues: ["0", "1"],
    labelNames: ["not_entailment", "entailment"],
    metrics: ["accuracy"],
    mainMetric: "accuracy",
  },
};

/** All registered task names, in registry order. */
export const GLUE_TASK_NAMES: readonly GlueTaskName[] = Object.keys(GLUE_TASKS) as GlueTaskName[];

/** True when `name` is a registered task name (exact, lower-case). */
export function isGlueTaskName(name: string): name is GlueTaskName {
  return Object.hasOwn(GLUE_TASKS, name);
}

/**
 * Looks up a task by its lower-case name.
 * @throws Error listing the known names when `name` is not registered.
 * @example
 * ```ts
 * glueTask("stsb").numLabels; // 1 (regression)
 * ```
 */
export function glueTask(name: string): GlueTaskSpec {
  if (!isGlueTaskName(name)) {
    throw new Error(`unknown GLUE task "${name}"; known tasks: ${GLUE_TASK_NAMES.join(", ")}`);
  }
  return GLUE_TASKS[name];
}

/**
 * The file layout of one split of a task.
 * @throws Error naming the task and its splits when the task has no such split.
 */
export function glueSplitLayout(task: GlueTaskSpec, split: string): GlueFileLayout {
  const layout = Object.hasOwn(task.splits, split) ? task.splits[split as GlueSplit] : undefined;
  if (!layout) {
    throw new Error(
      `GLUE task "${task.name}" has no split "${split}"; its splits are: ${
        Object.keys(task.splits).join(", ")
      }`,
    );
  }
  return layout;
}
