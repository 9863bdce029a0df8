/**
 * The run's `metrics.jsonl`: one JSON object per line, `kind: "device_round"` (one per participating device
 * per round) and `kind: "round"` (one per round, after its devices). Lines are appended and the file is
 * flushed at the end of every round, so a crash loses at most the round in progress; resuming rewrites the
 * file (atomically) without the rounds after the checkpoint.
 * @module
 */
import { writeTextAtomic } from "./atomic_write.ts";

/** One round's record (metrics, bytes, timings …); non-finite numbers are written as null. */
export interface RoundRecord {
  kind: "round";
  /** Round index (integer ≥ 0). */
  round: number;
  [field: string]: unknown;
}

/** One device's record for one round. */
export interface DeviceRoundRecord {
  kind: "device_round";
  /** Round index (integer ≥ 0). */
  round: number;
  /** Device index (integer ≥ 0). */
  device: number;
  [field: string]: unknown;
}

/** A line of `metrics.jsonl`. */
export type MetricsRecord = RoundRecord | DeviceRoundRecord;

function checkIndex(v: unknown, what: string): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new Error(`RunLog: ${what} must be an integer ≥ 0, got ${JSON.stringify(v)}`);
  }
}

/** Options of {@link RunLog.create}. */
export interface RunLogOptions {
  /**
   * Resume: keep the existing file's records of rounds ≤ this round and drop the rest. Without it, any
   * existing file is replaced by an empty one.
   */
  resumeAfterRound?: number;
}

/**
 * Appender for `metrics.jsonl`.
 *
 * @example
 * ```ts
 * const log = await RunLog.create("runs/x/metrics.jsonl");
 * log.deviceRound({ round: 0, device: 1, gamma: 0.3, bytesUp: 1234 });
 * await log.round({ round: 0, devAccuracy: 0.71 }); // writes both lines and flushes
 * ```
 */
export class RunLog {
  /** Path of the metrics file. */
  readonly path: string;
  #pending: string[] = [];

  private constructor(path: string) {
    this.path = path;
  }

  /** Opens (creating or replacing, or trimming on resume) the metrics file at `path`. */
  static async create(path: string, options: RunLogOptions = {}): Promise<RunLog> {
    let kept: MetricsRecord[] = [];
    if (options.resumeAfterRound !== undefined) {
      checkIndex(options.resumeAfterRound, "resumeAfterRound");
      let exists = true;
      try {
        await Deno.stat(path);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        exists = false;
      }
      if (exists) kept = (await readMetrics(path)).filter((r) => r.round <= options.resumeAfterRound!);
    }
    await writeTextAtomic(path, kept.map((r) => JSON.stringify(r) + "\n").join(""));
    return new RunLog(path);
  }

  /** Queues a device's record for the round; written by the next {@link round} or {@link flush}. */
  deviceRound(rec: Omit<DeviceRoundRecord, "kind">): void {
    checkIndex(rec.round, "device_round.round");
    checkIndex(rec.device, "device_round.device");
    this.#pending.push(JSON.stringify({ kind: "device_round", ...rec }));
  }

  /** Writes the queued device records and this round's record, then flushes. */
  async round(rec: Omit<RoundRecord, "kind">): Promise<void> {
    checkIndex(rec.round, "round.round");
    this.#pending.push(JSON.stringify({ kind: "round", ...rec }));
    await this.flush();
  }

  /** Appends every queued line to the file. */
  async flush(): Promise<void> {
    if (this.#pending.length === 0) return;
    const text = this.#pending.map((l) => l + "\n").join("");
    await Deno.writeTextFile(this.path, text, { append: true });
    this.#pending = [];
  }
}

/** Reads `metrics.jsonl` (blank lines skipped); a malformed line is an error naming the file and line. */
export async function readMetrics(path: string): Promise<MetricsRecord[]> {
  const text = await Deno.readTextFile(path);
  const out: MetricsRecord[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${path}:${i + 1}: not valid JSON (${e instanceof Error ? e.message : e})`);
    }
    const r = v as Record<string, unknown>;
    if (typeof v !== "object" || v === null || (r.kind !== "round" && r.kind !== "device_round")) {
      throw new Error(`${path}:${i + 1}: expected an object with kind "round" or "device_round"`);
    }
    if (typeof r.round !== "number" || !Number.isInteger(r.round) || r.round < 0) {
      throw new Error(`${path}:${i + 1}: field "round" must be an integer ≥ 0`);
    }
    if (r.kind === "device_round" && (typeof r.device !== "number" || !Number.isInteger(r.device))) {
      throw new Error(`${path}:${i + 1}: device_round record needs an integer field "device"`);
    }
    out.push(v as MetricsRecord);
  });
  return out;
}

/** Value of a (dot-separated) field of a record as a number, or undefined if missing or not a number. */
export function metricValue(rec: Record<string, unknown>, key: string): number | undefined {
  let v: unknown = rec;
  for (const part of key.split(".")) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** Options of {@link summarizeRun}. */
export interface SummaryOptions {
  /** Field of the round records to summarise (dot path allowed), e.g. `dev.accuracy`. */
  metric: string;
  /** Whether larger is better (default true; false for losses). */
  higherIsBetter?: boolean;
  /** Field of device_round records holding uplink bytes; default `bytesUp`. */
  bytesUpKey?: string;
  /** Field of device_round records holding downlink bytes; default `bytesDown`. */
  bytesDownKey?: string;
}

/** Run summary: final and best-over-rounds metric (both reported; the reference code reports the best). */
export interface RunSummary {
  /** Number of round records. */
  rounds: number;
  /** Metric of the last round that has it (NaN when none has). */
  final: number;
  /** Best metric over rounds (NaN when none). */
  best: number;
  /** Round of the best metric (−1 when none). */
  bestRound: number;
  /** Σ uplink bytes over device_round records. */
  bytesUp: number;
  /** Σ downlink bytes over device_round records. */
  bytesDown: number;
}

/**
 * Summarises a run's records.
 *
 * @example
 * ```ts
 * summarizeRun(await readMetrics("runs/x/metrics.jsonl"), { metric: "devAccuracy" }).best;
 * ```
 */
export function summarizeRun(records: readonly MetricsRecord[], o: SummaryOptions): RunSummary {
  const higher = o.higherIsBetter ?? true;
  let rounds = 0, final = NaN, best = NaN, bestRound = -1, up = 0, down = 0;
  for (const r of records) {
    if (r.kind === "round") {
      rounds++;
      const v = metricValue(r, o.metric);
      if (v === undefined) continue;
      final = v;
      if (bestRound < 0 || (higher ? v > best : v < best)) {
        best = v;
        bestRound = r.round;
      }
    } else {
      up += metricValue(r, o.bytesUpKey ?? "bytesUp") ?? 0;
      down += metricValue(r, o.bytesDownKey ?? "bytesDown") ?? 0;
    }
  }
  return { rounds, final, best, bestRound, bytesUp: up, bytesDown: down };
}
