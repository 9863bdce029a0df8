/**
 * FedLoDrop masks: per round, per device and per adapted module, which columns of A (input features) and
 * which rows of B (output features) the device keeps. A mask is a pure function of
 * (seed, round, device, module index), so a rerun drops the same entries and an upload can carry the seed
 * instead of index lists.
 * @module
 */
import { KeyedRandom, Purpose } from "../kernels/rng.ts";

/**
 * One LoRA-adapted linear module: W = W0 + s·B·A with B `[nOut, r]` and A `[r, nIn]`.
 * `a` and `b` are the adapter tensor names (peft style) of A and B.
 */
export interface ModuleSpec {
  /** Module path, e.g. `roberta.encoder.layer.0.attention.self.query`. */
  path: string;
  /** Output features (rows of W and of B). */
  nOut: number;
  /** Input features (columns of W and of A). */
  nIn: number;
  /** Name of the lora_A tensor ([r, nIn]) in the adapter map. */
  a: string;
  /** Name of the lora_B tensor ([nOut, r]) in the adapter map. */
  b: string;
}

/** The kept entries of one module: 1 = kept, 0 = dropped. */
export interface ModuleMask {
  /** `[nIn]`: columns of A. */
  a: Float32Array;
  /** `[nOut]`: rows of B. */
  b: Float32Array;
}

/**
 * Masks of one device for one round, keyed by module path. A module absent from the map (or an empty map)
 * means nothing was dropped there.
 */
export type Masks = Map<string, ModuleMask>;

/** How drops are sampled: `bernoulli` (each entry kept with probability 1 − γ) or `fixed` (exactly ⌊γ·n⌋ dropped). */
export type MaskKind = "bernoulli" | "fixed";

/** Arguments of {@link drawMasks}. */
export interface DrawMasksOptions {
  /** Run seed (u32). */
  seed: number;
  /** Round index (integer ≥ 0). */
  round: number;
  /** Device index (integer ≥ 0). */
  device: number;
  /** The adapted modules, in their fixed canonical order (the index in this list keys the stream). */
  modules: readonly ModuleSpec[];
  /** Drop rate γ in [0, 1). */
  gamma: number;
  /** Sampling scheme; default `bernoulli`. */
  kind?: MaskKind;
}

function checkNonNegInt(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0) throw new Error(`drawMasks: ${what} must be an integer ≥ 0, got ${v}`);
}

/** Checks that a module list is well formed (positive integer sizes, unique paths, names present). */
export function checkModules(modules: readonly ModuleSpec[], where: string): void {
  const seen = new Set<string>();
  for (const [i, m] of modules.entries()) {
    if (typeof m.path !== "string" || m.path === "") throw new Error(`${where}: modules[${i}].path is empty`);
    if (seen.has(m.path)) throw new Error(`${where}: module path "${m.path}" appears twice`);
    seen.add(m.path);
    for (const f of ["nOut", "nIn"] as const) {
      if (!Number.isInteger(m[f]) || m[f] <= 0) {
        throw new Error(`${where}: module "${m.path}".${f} must be a positive integer, got ${m[f]}`);
      }
    }
    if (!m.a || !m.b) throw new Error(`${where}: module "${m.path}" needs tensor names a and b`);
  }
}

/**
 * Draws one 0/1 vector of length n from `rng`: `bernoulli` keeps each entry with probability 1 − γ (one
 * uniform per entry, in order); `fixed` shuffles 0..n−1 and drops the first ⌊γ·n⌋.
 */
export function drawMaskVector(n: number, gamma: number, kind: MaskKind, rng: KeyedRandom): Float32Array {
  const m = new Float32Array(n).fill(1);
  if (gamma === 0) return m;
  if (kind === "bernoulli") {
    for (let i = 0; i < n; i++) if (rng.uniform() < gamma) m[i] = 0;
  } else {
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    rng.shuffle(order);
    // ⌊γ·n⌋, robust to binary rounding (0.29 · 100 = 28.999… must drop 29).
    const drop = Math.floor(gamma * n + 1e-9);
    for (let i = 0; i < drop; i++) m[order[i]] = 0;
  }
  return m;
}

/**
 * Draws a device's masks for one round. Module i's columns of A use the stream
 * `KeyedRandom([seed, Purpose.mask, round, device, i, 0])`, its rows of B `[…, i, 1]`.
 * γ = 0 gives all ones.
 *
 * @example
 * ```ts
 * const masks = drawMasks({ seed: 7, round: 3, device: 1, modules, gamma: 0.3 });
 * masks.get(modules[0].path)!.b; // Float32Array of 0/1, length nOut
 * ```
 */
export function drawMasks(o: DrawMasksOptions): Masks {
  const kind = o.kind ?? "bernoulli";
  if (kind !== "bernoulli" && kind !== "fixed") {
    throw new Error(`drawMasks: kind must be "bernoulli" or "fixed", got ${JSON.stringify(kind)}`);
  }
  if (!(o.gamma >= 0 && o.gamma < 1)) throw new Error(`drawMasks: gamma must be in [0, 1), got ${o.gamma}`);
  checkNonNegInt(o.seed, "seed");
  checkNonNegInt(o.round, "round");
  checkNonNegInt(o.device, "device");
  checkModules(o.modules, "drawMasks");
  const out: Masks = new Map();
  o.modules.forEach((m, i) => {
    const ra = new KeyedRandom([o.seed, Purpose.mask, o.round, o.device, i, 0]);
    const rb = new KeyedRandom([o.seed, Purpose.mask, o.round, o.device, i, 1]);
    out.set(m.path, {
      a: drawMaskVector(m.nIn, o.gamma, kind, ra),
      b: drawMaskVector(m.nOut, o.gamma, kind, rb),
    });
  });
  return out;
}

/**
 * The mask of `module` in `masks`, validated against the module's sizes, or undefined when the module is
 * absent (nothing dropped).
 */
export function moduleMask(masks: Masks, module: ModuleSpec, where: string): ModuleMask | undefined {
  const m = masks.get(module.path);
  if (m === undefined) return undefined;
  if (m.a.length !== module.nIn) {
    throw new Error(
      `${where}: mask a of "${module.path}" has length ${m.a.length}, expected nIn = ${module.nIn}`,
    );
  }
  if (m.b.length !== module.nOut) {
    throw new Error(
      `${where}: mask b of "${module.path}" has length ${m.b.length}, expected nOut = ${module.nOut}`,
    );
  }
  return m;
}

/** Number of kept (non-zero) entries of a 0/1 vector. */
export function keptCount(v: Float32Array): number {
  let c = 0;
  for (let i = 0; i < v.length; i++) if (v[i] !== 0) c++;
  return c;
}

/** True when no entry of any mask is dropped (an empty map counts as nothing dropped). */
export function nothingDropped(masks: Masks): boolean {
  for (const m of masks.values()) {
    if (keptCount(m.a) !== m.a.length || keptCount(m.b) !== m.b.length) return false;
  }
  return true;
}

/** Kept fractions returned by {@link maskStats}. */
export interface MaskStats {
  /** Kept fraction of all A columns (over all modules). */
  a: number;
  /** Kept fraction of all B rows (over all modules). */
  b: number;
  /** Kept fraction of all mask entries (A columns and B rows together). */
  entries: number;
  /** Fraction of ΔW = diag(m_B)·B·A·diag(m_A) entries that survive (Σ keptRows·keptCols / Σ nOut·nIn). */
  deltaW: number;
  /** Per-module kept fractions. */
  perModule: Map<string, { a: number; b: number }>;
}

/**
 * Kept fractions of a device's masks (1 everywhere for an empty map).
 *
 * @example
 * ```ts
 * maskStats(drawMasks({ seed, round, device, modules, gamma: 0.3 })).entries; // ≈ 0.7
 * ```
 */
export function maskStats(masks: Masks): MaskStats {
  let ka = 0, na = 0, kb = 0, nb = 0, kw = 0, nw = 0;
  const perModule = new Map<string, { a: number; b: number }>();
  for (const [path, m] of masks) {
    const ca = keptCount(m.a), cb = keptCount(m.b);
    ka += ca;
    na += m.a.length;
    kb += cb;
    nb += m.b.length;
    kw += ca * cb;
    nw += m.a.length * m.b.length;
    perModule.set(path, { a: ca / m.a.length, b: cb / m.b.length });
  }
  return {
    a: na ? ka / na : 1,
    b: nb ? kb / nb : 1,
    entries: na + nb ? (ka + kb) / (na + nb) : 1,
    deltaW: nw ? kw / nw : 1,
    perModule,
  };
}
