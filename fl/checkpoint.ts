/**
 * The checkpoint of a run, written after every round: the global adapter and (with exact aggregation) the
 * frozen weights that absorbed FedEx residuals, plus the last completed round. It is written into a temporary
 * folder and swapped in by renames, so a killed run always leaves a complete checkpoint behind.
 * @module
 */
import { readSafetensors, writeSafetensors } from "../model/safetensors.ts";
import { pathExists, writeTextAtomic } from "./atomic_write.ts";

/** What a resumed run needs besides the run's config. */
export interface CheckpointState {
  /** Last completed round. */
  round: number;
  /** Global adapter (peft names). */
  adapter: Map<string, Float32Array>;
  /** Frozen weights changed by exact aggregation, keyed `<module path>.weight`. */
  baseWeights: Map<string, Float32Array>;
  /** Inner ranks of the residual factors the next round's downlink carries (exact aggregation). */
  residualRanks: Map<string, number>;
}

/** Writes `runDir/checkpoint/` (via `checkpoint.tmp` and `checkpoint.old`). */
export async function writeCheckpoint(
  runDir: string,
  state: CheckpointState,
  shapes: Map<string, number[]>,
): Promise<void> {
  const dir = `${runDir}/checkpoint`, tmp = `${dir}.tmp`, old = `${dir}.old`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp, { recursive: true });
  const tensors = (m: Map<string, Float32Array>) =>
    new Map([...m].map(([k, data]) => [k, { shape: shapes.get(k) ?? [data.length], data }]));
  await writeSafetensors(`${tmp}/adapter.safetensors`, tensors(state.adapter));
  if (state.baseWeights.size > 0) {
    await writeSafetensors(`${tmp}/base_weights.safetensors`, tensors(state.baseWeights));
  }
  await writeTextAtomic(
    `${tmp}/state.json`,
    JSON.stringify({
      round: state.round,
      residualRanks: Object.fromEntries(state.residualRanks),
      format: 1,
    }) + "\n",
  );
  await Deno.remove(old, { recursive: true }).catch(() => {});
  if (await pathExists(dir)) await Deno.rename(dir, old);
  await Deno.rename(tmp, dir);
  await Deno.remove(old, { recursive: true }).catch(() => {});
}

/** Reads the run's checkpoint (falling back to `checkpoint.old` if a swap was interrupted); null if none. */
export async function readCheckpoint(runDir: string): Promise<CheckpointState | null> {
  for (const dir of [`${runDir}/checkpoint`, `${runDir}/checkpoint.old`]) {
    if (!(await pathExists(`${dir}/state.json`))) continue;
    const st = JSON.parse(await Deno.readTextFile(`${dir}/state.json`));
    if (!Number.isInteger(st.round) || st.round < 0) {
      throw new Error(`${dir}/state.json: field "round" is not a round index`);
    }
    const plain = (m: Map<string, { data: Float32Array }>) => new Map([...m].map(([k, v]) => [k, v.data]));
    const adapter = plain(await readSafetensors(`${dir}/adapter.safetensors`));
    const baseWeights = (await pathExists(`${dir}/base_weights.safetensors`))
      ? plain(await readSafetensors(`${dir}/base_weights.safetensors`))
      : new Map<string, Float32Array>();
    const residualRanks = new Map<string, number>(Object.entries(st.residualRanks ?? {}));
    return { round: st.round, adapter, baseWeights, residualRanks };
  }
  return null;
}
