/**
 * What travels between server and device in FedLoDrop, and how many bytes it takes.
 *
 * Wire format that the byte counts describe (one message per device per round and direction):
 * - every tensor sent carries a {@link TENSOR_HEADER_BYTES}-byte header (u32 tensor id, u32 rows, u32 cols,
 *   u32 kept count);
 * - values: the kept columns of each A (r × keptCols), the kept rows of each B (keptRows × r), the full head
 *   tensors, and on the downlink of exact aggregation the residual factors ((nOut + nIn)·q per module);
 * - mask overhead: `seed` encoding sends {@link SEED_BYTES} bytes (a u64 mask seed) per message, `indices`
 *   encoding sends {@link INDEX_BYTES} bytes per kept column/row index of each masked tensor; a tensor whose
 *   kept count equals its full size needs no index list (the header says so). When nothing is dropped at all
 *   there is no mask overhead in either encoding.
 * @module
 */
import { keptCount, type Masks, moduleMask, type ModuleSpec } from "./masks.ts";

/** Bytes of the per-tensor header (tensor id, rows, cols, kept count; 4 × u32). */
export const TENSOR_HEADER_BYTES = 16;
/** Bytes of the mask seed in `seed` encoding (u64), once per message. */
export const SEED_BYTES = 8;
/** Bytes per kept index in `indices` encoding (u32). */
export const INDEX_BYTES = 4;

/** How the receiver learns the masks: from the seed (masks are seed-derived) or from explicit index lists. */
export type MaskEncoding = "seed" | "indices";

/** Arguments of {@link uplinkBytes}. */
export interface TrafficOptions {
  /** Adapted modules. */
  modules: readonly ModuleSpec[];
  /** The device's masks (empty map = nothing dropped). */
  masks: Masks;
  /** LoRA rank r. */
  r: number;
  /** Number of head parameters (sent in full). */
  headParams: number;
  /** Number of head tensors (for headers); default 4 (dense.weight, dense.bias, out_proj.weight, out_proj.bias). */
  headTensors?: number;
  /** Bytes per value; default 4 (fp32). */
  bytesPerValue?: number;
  /** Mask encoding; default `seed`. */
  maskEncoding?: MaskEncoding;
  /** Whether the A factors are sent; default true (false for FFA-LoRA, where A is frozen and shared). */
  includeA?: boolean;
}

/** Arguments of {@link downlinkBytes}: as for the uplink, plus the residual ranks of exact aggregation. */
export interface DownlinkOptions extends TrafficOptions {
  /** Per module path, the inner rank q of the residual factors being sent (exact aggregation only). */
  residualRanks?: Map<string, number>;
}

/** Byte breakdown of one message. */
export interface ByteBreakdown {
  /** Number of values sent. */
  valueCount: number;
  /** Bytes of the values (valueCount × bytesPerValue). */
  values: number;
  /** Bytes of mask information (seed or index lists). */
  indices: number;
  /** Bytes of tensor headers. */
  header: number;
  /** values + indices + header. */
  total: number;
}

function checkTraffic(o: TrafficOptions, where: string): Required<Omit<TrafficOptions, "modules" | "masks">> {
  const bpv = o.bytesPerValue ?? 4;
  const enc = o.maskEncoding ?? "seed";
  const headTensors = o.headTensors ?? 4;
  if (!Number.isInteger(o.r) || o.r < 1) {
    throw new Error(`${where}: r must be a positive integer, got ${o.r}`);
  }
  if (!Number.isInteger(o.headParams) || o.headParams < 0) {
    throw new Error(`${where}: headParams must be an integer ≥ 0, got ${o.headParams}`);
  }
  if (!Number.isInteger(headTensors) || headTensors < 0) {
    throw new Error(`${where}: headTensors must be an integer ≥ 0, got ${headTensors}`);
  }
  if (!(bpv > 0)) throw new Error(`${where}: bytesPerValue must be > 0, got ${bpv}`);
  if (enc !== "seed" && enc !== "indices") {
    throw new Error(`${where}: maskEncoding must be "seed" or "indices", got ${JSON.stringify(enc)}`);
  }
  return {
    r: o.r,
    headParams: o.headParams,
    headTensors,
    bytesPerValue: bpv,
    maskEncoding: enc,
    includeA: o.includeA ?? true,
  };
}

function subAdapterBytes(o: TrafficOptions, where: string): ByteBreakdown & { bpv: number } {
  const c = checkTraffic(o, where);
  let valueCount = c.headParams,
    header = c.headTensors * TENSOR_HEADER_BYTES,
    indexCount = 0,
    anyDropped = false;
  for (const m of o.modules) {
    const mask = moduleMask(o.masks, m, where);
    const cols = mask ? keptCount(mask.a) : m.nIn;
    const rows = mask ? keptCount(mask.b) : m.nOut;
    if (c.includeA) {
      valueCount += c.r * cols;
      header += TENSOR_HEADER_BYTES;
      if (cols !== m.nIn) {
        anyDropped = true;
        indexCount += cols;
      }
    }
    valueCount += rows * c.r;
    header += TENSOR_HEADER_BYTES;
    if (rows !== m.nOut) {
      anyDropped = true;
      indexCount += rows;
    }
  }
  const indices = !anyDropped ? 0 : c.maskEncoding === "seed" ? SEED_BYTES : indexCount * INDEX_BYTES;
  const values = valueCount * c.bytesPerValue;
  return { valueCount, values, indices, header, total: values + indices + header, bpv: c.bytesPerValue };
}

/**
 * Bytes a device uploads: kept columns of each A and kept rows of each B, the full head, mask information
 * and tensor headers (see the module doc for the wire format).
 *
 * @example
 * ```ts
 * uplinkBytes({ modules, masks, r: 4, headParams: 1024 * 1026 + 2 * 1025 }).total;
 * ```
 */
export function uplinkBytes(o: TrafficOptions): ByteBreakdown {
  const { bpv: _, ...b } = subAdapterBytes(o, "uplinkBytes");
  return b;
}

/**
 * Bytes the server sends a device: its sub-adapter (kept parts), the head, mask information, and with exact
 * aggregation the residual factors (left `[nOut, q]` and right `[q, nIn]` per module, two extra tensors).
 */
export function downlinkBytes(o: DownlinkOptions): ByteBreakdown {
  const { bpv, ...b } = subAdapterBytes(o, "downlinkBytes");
  if (o.residualRanks) {
    const byPath = new Map(o.modules.map((m) => [m.path, m]));
    for (const [path, q] of o.residualRanks) {
      const m = byPath.get(path);
      if (!m) throw new Error(`downlinkBytes: residual for unknown module "${path}"`);
      if (!Number.isInteger(q) || q < 0) throw new Error(`downlinkBytes: residual rank of "${path}" is ${q}`);
      b.valueCount += (m.nOut + m.nIn) * q;
      b.header += 2 * TENSOR_HEADER_BYTES;
    }
    b.values = b.valueCount * bpv;
    b.total = b.values + b.indices + b.header;
  }
  return b;
}

function loraTensors(
  map: Map<string, Float32Array>,
  m: ModuleSpec,
  where: string,
  what: string,
): { a: Float32Array; b: Float32Array; r: number } {
  const a = map.get(m.a), b = map.get(m.b);
  if (!a) throw new Error(`${where}: ${what} lacks tensor "${m.a}" (lora_A of ${m.path})`);
  if (!b) throw new Error(`${where}: ${what} lacks tensor "${m.b}" (lora_B of ${m.path})`);
  const r = a.length / m.nIn;
  if (!Number.isInteger(r) || r < 1 || b.length !== m.nOut * r) {
    throw new Error(
      `${where}: ${what} module ${m.path}: A has ${a.length} values and B ${b.length}, not [r, ${m.nIn}] and [${m.nOut}, r]`,
    );
  }
  return { a, b, r };
}

function keptIndices(v: Float32Array | undefined, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (!v || v[i] !== 0) out.push(i);
  return out;
}

/**
 * The compacted sub-adapter as sent: for each module, A restricted to its kept columns (`[r, keptCols]`) and B
 * to its kept rows (`[keptRows, r]`), under the same tensor names; other (head) tensors copied whole.
 */
export function extractSubAdapter(
  adapter: Map<string, Float32Array>,
  masks: Masks,
  modules: readonly ModuleSpec[],
): Map<string, Float32Array> {
  const where = "extractSubAdapter";
  const out = new Map<string, Float32Array>();
  const lora = new Set<string>();
  for (const m of modules) {
    lora.add(m.a).add(m.b);
    const { a, b, r } = loraTensors(adapter, m, where, "adapter");
    const mask = moduleMask(masks, m, where);
    const cols = keptIndices(mask?.a, m.nIn), rows = keptIndices(mask?.b, m.nOut);
    const sa = new Float32Array(r * cols.length);
    for (let t = 0; t < r; t++) cols.forEach((j, c) => (sa[t * cols.length + c] = a[t * m.nIn + j]));
    const sb = new Float32Array(rows.length * r);
    rows.forEach((i, c) => sb.set(b.subarray(i * r, i * r + r), c * r));
    out.set(m.a, sa);
    out.set(m.b, sb);
  }
  for (const [name, t] of adapter) if (!lora.has(name)) out.set(name, t.slice());
  return out;
}

/**
 * Inverse of {@link extractSubAdapter}: a full adapter holding `global` where dropped and the compacted
 * `sub` values where kept; head tensors taken from `sub`.
 */
export function mergeSubAdapter(
  global: Map<string, Float32Array>,
  sub: Map<string, Float32Array>,
  masks: Masks,
  modules: readonly ModuleSpec[],
): Map<string, Float32Array> {
  const where = "mergeSubAdapter";
  const out = new Map<string, Float32Array>();
  const lora = new Set<string>();
  for (const m of modules) {
    lora.add(m.a).add(m.b);
    const { a, b, r } = loraTensors(global, m, where, "global adapter");
    const mask = moduleMask(masks, m, where);
    const cols = keptIndices(mask?.a, m.nIn), rows = keptIndices(mask?.b, m.nOut);
    const sa = sub.get(m.a), sb = sub.get(m.b);
    if (!sa || sa.length !== r * cols.length) {
      throw new Error(
        `${where}: sub-adapter "${m.a}" has ${sa?.length ?? "no"} values, expected ${r}×${cols.length}`,
      );
    }
    if (!sb || sb.length !== rows.length * r) {
      throw new Error(
        `${where}: sub-adapter "${m.b}" has ${sb?.length ?? "no"} values, expected ${rows.length}×${r}`,
      );
    }
    const na = a.slice(), nb = b.slice();
    for (let t = 0; t < r; t++) cols.forEach((j, c) => (na[t * m.nIn + j] = sa[t * cols.length + c]));
    rows.forEach((i, c) => nb.set(sb.subarray(c * r, c * r + r), i * r));
    out.set(m.a, na);
    out.set(m.b, nb);
  }
  for (const [name, g] of global) {
    if (lora.has(name)) continue;
    const t = sub.get(name);
    if (!t || t.length !== g.length) {
      throw new Error(
        `${where}: head tensor "${name}" has ${t?.length ?? "no"} values, expected ${g.length}`,
      );
    }
    out.set(name, t.slice());
  }
  return out;
}

/**
 * What the server keeps of a device's training: `trained` values where the device kept the entry, `global`
 * values (bit-identical) where it dropped them; head tensors from `trained`.
 *
 * @example
 * ```ts
 * const returned = applyReturnedEntries(global, trainedOnDevice, masks, modules);
 * ```
 */
export function applyReturnedEntries(
  global: Map<string, Float32Array>,
  trained: Map<string, Float32Array>,
  masks: Masks,
  modules: readonly ModuleSpec[],
): Map<string, Float32Array> {
  for (const [name, g] of global) {
    const t = trained.get(name);
    if (!t || t.length !== g.length) {
      throw new Error(
        `applyReturnedEntries: trained tensor "${name}" has ${
          t?.length ?? "no"
        } values, expected ${g.length}`,
      );
    }
  }
  return mergeSubAdapter(global, extractSubAdapter(trained, masks, modules), masks, modules);
}

/**
 * The reference code's `reset` mode: a copy of `adapter` with the dropped columns of each A and dropped rows
 * of each B set to zero (head tensors copied unchanged).
 */
export function resetDropped(
  adapter: Map<string, Float32Array>,
  masks: Masks,
  modules: readonly ModuleSpec[],
): Map<string, Float32Array> {
  const where = "resetDropped";
  const out = new Map<string, Float32Array>();
  for (const [name, t] of adapter) out.set(name, t.slice());
  for (const m of modules) {
    const { r } = loraTensors(adapter, m, where, "adapter");
    const mask = moduleMask(masks, m, where);
    if (!mask) continue;
    const a = out.get(m.a)!, b = out.get(m.b)!;
    for (let j = 0; j < m.nIn; j++) {
      if (mask.a[j] === 0) { for (let t = 0; t < r; t++) a[t * m.nIn + j] = 0; }
    }
    for (let i = 0; i < m.nOut; i++) if (mask.b[i] === 0) b.fill(0, i * r, i * r + r);
  }
  return out;
}
