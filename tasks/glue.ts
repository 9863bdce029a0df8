/**
 * Readers for the original GLUE TSV files (`<DIR>/<TASK>/{train,dev}.tsv`, as written by the classic
 * `download_glue_data.py`). Lines are split on tabs with no quote handling (several real rows open a `"`
 * that never closes), columns are located by header name, and any malformed row is an error naming the file
 * and its 1-based line number.
 *
 * @example
 * ```ts
 * import { DEFAULT_DATA_DIR, readGlueSplit } from "./glue.ts";
 * const dev = await readGlueSplit(DEFAULT_DATA_DIR, "rte", "dev");
 * dev[0]; // { idx: 0, a: "Dana Reeve, ...", b: "Christopher Reeve had an accident.", label: 1 }
 * ```
 * @module
 */
import { glueSplitLayout, glueTask, type GlueTaskSpec } from "./registry.ts";

/** One labelled GLUE example. */
export interface GlueExample {
  /** Row number in the split, 0-based, counting data rows only (the header is not a row). */
  idx: number;
  /** First (or only) text. */
  a: string;
  /** Second text for sentence-pair tasks; absent for single-sentence tasks. */
  b?: string;
  /** Class id (position in the task's `labelValues`), or the float score for regression (STS-B). */
  label: number;
}

function fileUrlToPath(url: URL): string {
  if (url.protocol !== "file:") return url.href;
  const path = decodeURIComponent(url.pathname);
  return Deno.build.os === "windows" ? path.replace(/^\/([A-Za-z]:)/, "$1") : path;
}

/** The committed real samples (first 256 train / 128 dev rows of each task): this repository's `data/glue`. */
export const DEFAULT_DATA_DIR: string = fileUrlToPath(new URL("../data/glue", import.meta.url));

/** Where the full GLUE files live when the repository is checked out next to `shared/`: `../shared/data/glue`. */
export const SHARED_DATA_DIR: string = fileUrlToPath(new URL("../../shared/data/glue", import.meta.url));

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Picks the GLUE data folder: `dir` when given; else the full files in {@link SHARED_DATA_DIR} when
 * `preferShared` is set and that folder exists; else the committed samples in {@link DEFAULT_DATA_DIR}.
 * @example
 * ```ts
 * const dir = glueDataDir({ preferShared: true }); // full data when ../shared is present, else the samples
 * ```
 */
export function glueDataDir(options: { dir?: string; preferShared?: boolean } = {}): string {
  if (options.dir !== undefined) return options.dir;
  if (options.preferShared && isDirectory(SHARED_DATA_DIR)) return SHARED_DATA_DIR;
  return DEFAULT_DATA_DIR;
}

/** Path of one split's file: `<dataDir>/<Folder>/<file>`. Throws on an unknown task or split. */
export function glueSplitPath(dataDir: string, task: string, split: string): string {
  const spec = glueTask(task);
  const layout = glueSplitLayout(spec, split);
  const sep = dataDir.endsWith("/") || dataDir.endsWith("\\") ? "" : "/";
  return `${dataDir}${sep}${spec.folder}/${layout.file}`;
}

const FLOAT_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function columnIndex(names: readonly string[], wanted: string, where: string): number {
  const i = names.indexOf(wanted);
  if (i < 0) {
    throw new Error(`${where}: header has no column "${wanted}" (header columns: ${names.join(" | ")})`);
  }
  return i;
}

function parseLabel(spec: GlueTaskSpec, field: string, where: string): number {
  if (spec.regression) {
    const v = FLOAT_RE.test(field.trim()) ? Number(field.trim()) : NaN;
    const [lo, hi] = spec.scoreRange ?? [-Infinity, Infinity];
    if (!Number.isFinite(v) || v < lo || v > hi) {
      throw new Error(
        `${where}: ${spec.labelColumn} "${field}" is not a number in [${lo}, ${hi}]`,
      );
    }
    return v;
  }
  const id = spec.labelValues.indexOf(field.trim());
  if (id < 0) {
    throw new Error(
      `${where}: ${spec.labelColumn} "${field}" is not one of ${
        spec.labelValues.map((v) => `"${v}"`).join(", ")
      }`,
    );
  }
  return id;
}

/**
 * Parses the text of one GLUE split file. A leading UTF-8 BOM, CRLF line ends and a missing newline after
 * the last row are accepted; every line must have exactly the split's column count.
 * @param text the whole file as a string
 * @param task lower-case task name (see tasks/registry.ts)
 * @param split `train`, `dev` (or `dev_mismatched` for MNLI)
 * @param fileName used in error messages (`<fileName>:<line>: ...`, lines 1-based)
 * @throws Error naming file and line for a wrong column count, an unknown label or an unparsable score.
 * @example
 * ```ts
 * const rows = parseGlueTsv("sentence\tlabel\ngreat fun\t1\n", "sst2", "train", "SST-2/train.tsv");
 * // [{ idx: 0, a: "great fun", label: 1 }]
 * ```
 */
export function parseGlueTsv(text: string, task: string, split: string, fileName: string): GlueExample[] {
  const spec = glueTask(task);
  const layout = glueSplitLayout(spec, split);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].endsWith("\r")) lines[i] = lines[i].slice(0, -1);
  }

  let names: readonly string[];
  let first: number;
  if (spec.headerless) {
    names = spec.headerless;
    first = 0;
  } else {
    if (lines.length === 0) throw new Error(`${fileName}: empty file, expected a header line`);
    names = lines[0].split("\t");
    if (names.length !== layout.columns) {
      throw new Error(
        `${fileName}:1: header has ${names.length} tab-separated columns, expected ${layout.columns} ` +
          `for ${spec.folder}/${layout.file}`,
      );
    }
    first = 1;
  }
  const where = (line: number) => `${fileName}:${line}`;
  const textCols = spec.textColumns.map((c) => columnIndex(names, c, where(1)));
  const labelCol = columnIndex(names, spec.labelColumn, where(1));

  const out: GlueExample[] = [];
  for (let li = first; li < lines.length; li++) {
    const fields = lines[li].split("\t");
    if (fields.length !== layout.columns) {
      throw new Error(
        `${where(li + 1)}: row has ${fields.length} tab-separated columns, expected ${layout.columns}`,
      );
    }
    const label = parseLabel(spec, fields[labelCol], where(li + 1));
    const ex: GlueExample = { idx: out.length, a: fields[textCols[0]], label };
    if (textCols.length === 2) ex.b = fields[textCols[1]];
    out.push(ex);
  }
  return out;
}

/**
 * Reads one split of a task from a folder in the original GLUE layout.
 * @param dataDir folder holding `<TASK>/{train,dev}.tsv` (e.g. {@link DEFAULT_DATA_DIR})
 * @throws Error saying which file was expected when it is missing, or naming file and line for a bad row.
 * @example
 * ```ts
 * const train = await readGlueSplit(glueDataDir({ preferShared: true }), "sst2", "train");
 * ```
 */
export async function readGlueSplit(dataDir: string, task: string, split: string): Promise<GlueExample[]> {
  const path = glueSplitPath(dataDir, task, split);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      const spec = glueTask(task);
      throw new Error(
        `GLUE file not found: ${path} (task ${spec.name}, split ${split}). The data folder (--data DIR) must ` +
          `hold <TASK>/{train,dev}.tsv in the original GLUE layout, here ${spec.folder}/` +
          `${glueSplitLayout(spec, split).file}. Small real samples are committed in ${DEFAULT_DATA_DIR} ` +
          `(the default); the full files are at ${SHARED_DATA_DIR} when ../shared is present.`,
      );
    }
    throw e;
  }
  return parseGlueTsv(text, task, split, path);
}
