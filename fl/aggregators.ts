/**
 * Server-side aggregation of the devices' (sub-)adapters, as small interchangeable strategy objects behind one
 * interface: `fedavg` (FedIT), `fedex` (FedEx-LoRA exact aggregation, residual returned as low-rank factors)
 * and `ffa` (FFA-LoRA: A frozen, only B and the head averaged). Row/column dropout is handled by the
 * `keepers` (default) or `all` normalisation.
 * @module
 */
import { type Masks, type ModuleMask, moduleMask, type ModuleSpec } from "./masks.ts";

/** What one device sends back after local training. */
export interface ClientResult {
  /** Device index. */
  device: number;
  /** Local training-set size N_k (> 0); the aggregation weight is N_k / Σ N. */
  numSamples: number;
  /** Every adapter tensor: global values where dropped, trained values where kept. */
  adapter: Map<string, Float32Array>;
  /** The device's masks this round (empty map or all-ones = nothing dropped). */
  masks: Masks;
}

/** How dropped entries are averaged. */
export type Normalisation = "keepers" | "all";

/** Input of {@link Aggregator.aggregate}. */
export interface AggregateInput {
  /** The global adapter sent this round (every tensor, LoRA and head). */
  global: Map<string, Float32Array>;
  /** Adapted modules (tensors not named by a module are head tensors, averaged in full). */
  modules: readonly ModuleSpec[];
  /** LoRA scale s = alpha / r. */
  scale: number;
  /** Participating devices' results (at least one). */
  results: readonly ClientResult[];
  /**
   * `keepers`: each row of B / column of A averaged over the devices that kept it (weights renormalised),
   * unchanged when nobody kept it. `all`: plain weighted average of the returned values.
   */
  normalisation: Normalisation;
}

/** Low-rank residual update of a frozen weight: W0 ← W0 + left·right. */
export interface Residual {
  /** `[nOut, q]` row-major. */
  left: Float32Array;
  /** `[q, nIn]` row-major. */
  right: Float32Array;
  /** Inner rank. */
  q: number;
}

/** Output of {@link Aggregator.aggregate}. */
export interface AggregateOutput {
  /** New global adapter (fresh arrays; never aliases the input). */
  adapter: Map<string, Float32Array>;
  /** Per module path, the residual to add to the frozen weight; empty unless the aggregator is exact. */
  residual: Map<string, Residual>;
}

/** A server aggregation strategy. */
export interface Aggregator {
  /** Strategy name (`fedavg`, `fedex`, `ffa`). */
  readonly name: AggregatorName;
  /** True when A stays at its initialisation (devices need not train or upload it). */
  readonly freezesA: boolean;
  /** Aggregates one round's results into the new global adapter (and residual for exact strategies). */
  aggregate(input: AggregateInput): AggregateOutput;
}

/** Names accepted by {@link makeAggregator}. */
export type AggregatorName = "fedavg" | "fedex" | "ffa";

/** Data-size weights w_k = N_k / Σ N (validated). */
export function dataWeights(results: readonly ClientResult[]): number[] {
  if (results.length === 0) throw new Error("aggregate: no client results");
  let total = 0;
  for (const r of results) {
    if (!(r.numSamples > 0) || !Number.isFinite(r.numSamples)) {
      throw new Error(
        `aggregate: device ${r.device} has numSamples ${r.numSamples}, expected a positive number`,
      );
    }
    total += r.numSamples;
  }
  return results.map((r) => r.numSamples / total);
}

function tensorOf(map: Map<string, Float32Array>, name: string, len: number, who: string): Float32Array {
  const t = map.get(name);
  if (t === undefined) throw new Error(`aggregate: ${who} lacks tensor "${name}"`);
  if (t.length !== len) {
    throw new Error(`aggregate: ${who} tensor "${name}" has ${t.length} values, expected ${len}`);
  }
  return t;
}

/** Rank r of a module from the global A tensor's size (validated against B). */
export function moduleRank(global: Map<string, Float32Array>, m: ModuleSpec): number {
  const a = global.get(m.a), b = global.get(m.b);
  if (!a) throw new Error(`aggregate: global adapter lacks tensor "${m.a}" (lora_A of ${m.path})`);
  if (!b) throw new Error(`aggregate: global adapter lacks tensor "${m.b}" (lora_B of ${m.path})`);
  const r = a.length / m.nIn;
  if (!Number.isInteger(r) || r < 1 || b.length !== m.nOut * r) {
    throw new Error(
      `aggregate: module ${m.path}: A has ${a.length} values and B ${b.length}, not [r, ${m.nIn}] and [${m.nOut}, r]`,
    );
  }
  return r;
}

/**
 * Weighted average of one LoRA factor, with dropout handled along `axis`: the index set of the mask
 * (A: columns, B: rows). `stride`/`inner` map (maskIndex, t) to a flat offset.
 */
function averageFactor(
  global: Float32Array,
  parts: Float32Array[],
  partMasks: (Float32Array | undefined)[],
  w: number[],
  maskLen: number,
  offsetOf: (maskIndex: number, t: number) => number,
  other: number,
  normalisation: Normalisation,
): Float32Array {
  const out = new Float32Array(global.length);
  for (let i = 0; i < maskLen; i++) {
    let wsum = 0;
    if (normalisation === "keepers") {
      for (let k = 0; k < parts.length; k++) if (!partMasks[k] || partMasks[k]![i] !== 0) wsum += w[k];
    } else wsum = 1;
    for (let t = 0; t < other; t++) {
      const o = offsetOf(i, t);
      if (wsum === 0) {
        out[o] = global[o];
        continue;
      }
      let acc = 0;
      for (let k = 0; k < parts.length; k++) {
        if (normalisation === "keepers" && partMasks[k] && partMasks[k]![i] === 0) continue;
        acc += w[k] * parts[k][o];
      }
      out[o] = acc / wsum;
    }
  }
  return out;
}

interface ModuleAverages {
  a: Float32Array;
  b: Float32Array;
  aParts: Float32Array[];
  bParts: Float32Array[];
  r: number;
}

function averageModules(input: AggregateInput, w: number[], freezeA: boolean): Map<string, ModuleAverages> {
  const out = new Map<string, ModuleAverages>();
  for (const m of input.modules) {
    const r = moduleRank(input.global, m);
    const ga = input.global.get(m.a)!, gb = input.global.get(m.b)!;
    const aParts: Float32Array[] = [], bParts: Float32Array[] = [];
    const masks: (ModuleMask | undefined)[] = [];
    for (const res of input.results) {
      const who = `device ${res.device}`;
      aParts.push(tensorOf(res.adapter, m.a, ga.length, who));
      bParts.push(tensorOf(res.adapter, m.b, gb.length, who));
      masks.push(moduleMask(res.masks, m, `aggregate: device ${res.device}`));
    }
    // A [r, nIn]: mask over columns j, entry (t, j) at t*nIn + j.
    const a = freezeA ? ga.slice() : averageFactor(
      ga,
      aParts,
      masks.map((x) => x?.a),
      w,
      m.nIn,
      (j, t) => t * m.nIn + j,
      r,
      input.normalisation,
    );
    // B [nOut, r]: mask over rows i, entry (i, t) at i*r + t.
    const b = averageFactor(
      gb,
      bParts,
      masks.map((x) => x?.b),
      w,
      m.nOut,
      (i, t) => i * r + t,
      r,
      input.normalisation,
    );
    out.set(m.path, { a, b, aParts, bParts, r });
  }
  return out;
}

function averageHead(input: AggregateInput, w: number[], out: Map<string, Float32Array>): void {
  const lora = new Set<string>();
  for (const m of input.modules) lora.add(m.a).add(m.b);
  for (const [name, g] of input.global) {
    if (lora.has(name)) continue;
    const acc = new Float64Array(g.length);
    input.results.forEach((res, k) => {
      const t = tensorOf(res.adapter, name, g.length, `device ${res.device}`);
      for (let i = 0; i < g.length; i++) acc[i] += w[k] * t[i];
    });
    out.set(name, Float32Array.from(acc));
  }
}

function checkInput(input: AggregateInput): number[] {
  if (input.normalisation !== "keepers" && input.normalisation !== "all") {
    throw new Error(
      `aggregate: normalisation must be "keepers" or "all", got ${JSON.stringify(input.normalisation)}`,
    );
  }
  if (!Number.isFinite(input.scale)) throw new Error(`aggregate: scale must be finite, got ${input.scale}`);
  return dataWeights(input.results);
}

/**
 * FedEx-LoRA residual factors of one module: left = [s·w_1·B_1 | … | s·w_K·B_K | −s·B̄] `[nOut, (K+1)r]`,
 * right = [A_1; …; A_K; Ā] `[(K+1)r, nIn]`, so that left·right = s·(Σ w_k B_k A_k − B̄Ā).
 */
export function exactResidual(
  m: ModuleSpec,
  avg: { a: Float32Array; b: Float32Array; aParts: Float32Array[]; bParts: Float32Array[]; r: number },
  w: number[],
  scale: number,
): Residual {
  const { r } = avg;
  const K = avg.bParts.length;
  const q = (K + 1) * r;
  const left = new Float32Array(m.nOut * q);
  const right = new Float32Array(q * m.nIn);
  for (let k = 0; k <= K; k++) {
    const bk = k < K ? avg.bParts[k] : avg.b;
    const ak = k < K ? avg.aParts[k] : avg.a;
    const f = k < K ? scale * w[k] : -scale;
    for (let i = 0; i < m.nOut; i++) {
      for (let t = 0; t < r; t++) left[i * q + k * r + t] = f * bk[i * r + t];
    }
    right.set(ak, k * r * m.nIn);
  }
  return { left, right, q };
}

class LoraAggregator implements Aggregator {
  constructor(readonly name: AggregatorName, readonly freezesA: boolean, readonly exact: boolean) {}

  aggregate(input: AggregateInput): AggregateOutput {
    const w = checkInput(input);
    const adapter = new Map<string, Float32Array>();
    const residual = new Map<string, Residual>();
    const avgs = averageModules(input, w, this.freezesA);
    for (const m of input.modules) {
      const avg = avgs.get(m.path)!;
      adapter.set(m.a, avg.a);
      adapter.set(m.b, avg.b);
      if (this.exact) residual.set(m.path, exactResidual(m, avg, w, input.scale));
    }
    averageHead(input, w, adapter);
    return { adapter, residual };
  }
}

/**
 * Makes an aggregation strategy by name.
 *
 * @example
 * ```ts
 * const agg = makeAggregator("fedex");
 * const { adapter, residual } = agg.aggregate({ global, modules, scale: 2, results, normalisation: "keepers" });
 * ```
 */
export function makeAggregator(name: AggregatorName): Aggregator {
  switch (name) {
    case "fedavg":
      return new LoraAggregator("fedavg", false, false);
    case "fedex":
      return new LoraAggregator("fedex", false, true);
    case "ffa":
      return new LoraAggregator("ffa", true, false);
    default:
      throw new Error(
        `makeAggregator: unknown aggregator ${JSON.stringify(name)}; expected fedavg, fedex or ffa`,
      );
  }
}

/**
 * Dense `[nOut, nIn]` product left·right of a residual, accumulated in float64 (for tests and for merging
 * into checkpoints).
 */
export function denseDelta(residual: Residual, nOut: number, nIn: number): Float64Array {
  const { left, right, q } = residual;
  if (left.length !== nOut * q || right.length !== q * nIn) {
    throw new Error(
      `denseDelta: left has ${left.length} values and right ${right.length}, expected [${nOut}, ${q}] and [${q}, ${nIn}]`,
    );
  }
  const out = new Float64Array(nOut * nIn);
  for (let i = 0; i < nOut; i++) {
    for (let t = 0; t < q; t++) {
      const l = left[i * q + t];
      if (l === 0) continue;
      for (let j = 0; j < nIn; j++) out[i * nIn + j] += l * right[t * nIn + j];
    }
  }
  return out;
}
