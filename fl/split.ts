/**
 * Splitting a training set across simulated devices: `iid` (each example to a uniformly random device, as in
 * the reference code), `dirichlet` (per label, device shares ~ Dir(α)) and explicit `sizes`. All seeded from
 * `KeyedRandom([seed, Purpose.split, …])`.
 * @module
 */
import { KeyedRandom, Purpose } from "../kernels/rng.ts";

/** How to split: `"iid"`, `{ dirichlet: α }` or `{ sizes: [N_1, …, N_K] }`. */
export type SplitKind = "iid" | { dirichlet: number } | { sizes: number[] };

/** Arguments of {@link splitData}. */
export interface SplitOptions {
  /** Per-example label: class id (integer ≥ 0), or a float score when `regression` is true. */
  labels: readonly number[];
  /** Number of devices K (integer ≥ 1). */
  devices: number;
  /** Split scheme. */
  kind: SplitKind;
  /** Run seed (u32). */
  seed: number;
  /** Minimum examples per device for `iid` and `dirichlet` (redrawn until met); default 10. Not applied to `sizes`. */
  minPerDevice?: number;
  /** Labels are regression scores: bin them into 5 equal-width buckets over their range. */
  regression?: boolean;
  /** Redraw limit for `iid`/`dirichlet` before giving up with an error; default 1000. */
  maxTries?: number;
}

/** Number of buckets that regression scores are binned into for label-aware splits. */
export const REGRESSION_BUCKETS = 5;

/**
 * Class ids used for splitting: the labels themselves (checked to be integers ≥ 0) or, for regression,
 * 5 equal-width buckets over [min, max] (all in bucket 0 when every score is equal).
 */
export function splitClasses(labels: readonly number[], regression: boolean): number[] {
  if (!regression) {
    return labels.map((y, i) => {
      if (!Number.isInteger(y) || y < 0) {
        throw new Error(
          `splitData: labels[${i}] = ${y} is not a class id (integer ≥ 0); set regression: true?`,
        );
      }
      return y;
    });
  }
  let lo = Infinity, hi = -Infinity;
  labels.forEach((y, i) => {
    if (!Number.isFinite(y)) {
      throw new Error(`splitData: labels[${i}] = ${y} is not a finite regression score`);
    }
    lo = Math.min(lo, y);
    hi = Math.max(hi, y);
  });
  if (!(hi > lo)) return labels.map(() => 0);
  return labels.map((y) =>
    Math.min(REGRESSION_BUCKETS - 1, Math.floor((y - lo) / (hi - lo) * REGRESSION_BUCKETS))
  );
}

function iidAttempt(n: number, devices: number, rng: KeyedRandom): number[][] {
  const out: number[][] = Array.from({ length: devices }, () => []);
  for (let i = 0; i < n; i++) out[rng.int(devices)].push(i);
  return out;
}

/** Device shares ~ Dir(α) by normalised Gamma(α) draws; an all-underflow draw puts everything on one device. */
function dirichletShares(alpha: number, devices: number, rng: KeyedRandom): number[] {
  const g = Array.from({ length: devices }, () => rng.gamma(alpha));
  const sum = g.reduce((s, v) => s + v, 0);
  if (!(sum > 0) || !Number.isFinite(sum)) {
    const one = rng.int(devices);
    return g.map((_, k) => (k === one ? 1 : 0));
  }
  return g.map((v) => v / sum);
}

function dirichletAttempt(classes: number[], devices: number, alpha: number, rng: KeyedRandom): number[][] {
  const byClass = new Map<number, number[]>();
  classes.forEach((c, i) => {
    const l = byClass.get(c);
    if (l) l.push(i);
    else byClass.set(c, [i]);
  });
  const out: number[][] = Array.from({ length: devices }, () => []);
  for (const c of [...byClass.keys()].sort((x, y) => x - y)) {
    const idx = byClass.get(c)!;
    rng.shuffle(idx);
    const shares = dirichletShares(alpha, devices, rng);
    let cum = 0, start = 0;
    for (let k = 0; k < devices; k++) {
      cum += shares[k];
      const end = k === devices - 1 ? idx.length : Math.min(idx.length, Math.floor(cum * idx.length));
      for (let j = start; j < end; j++) out[k].push(idx[j]);
      start = Math.max(start, end);
    }
  }
  return out;
}

/**
 * Splits example indices 0..N−1 across devices. Each device's list is sorted ascending.
 *
 * @example
 * ```ts
 * const parts = splitData({ labels, devices: 3, kind: { dirichlet: 0.5 }, seed: 1 });
 * parts[0]; // example indices of device 0
 * ```
 */
export function splitData(o: SplitOptions): number[][] {
  const n = o.labels.length;
  const minPer = o.minPerDevice ?? 10;
  const maxTries = o.maxTries ?? 1000;
  if (!Number.isInteger(o.devices) || o.devices < 1) {
    throw new Error(`splitData: devices must be an integer ≥ 1, got ${o.devices}`);
  }
  if (!Number.isInteger(o.seed) || o.seed < 0) {
    throw new Error(`splitData: seed must be an integer ≥ 0, got ${o.seed}`);
  }
  if (!Number.isInteger(minPer) || minPer < 0) {
    throw new Error(`splitData: minPerDevice must be an integer ≥ 0, got ${minPer}`);
  }
  const classes = splitClasses(o.labels, o.regression ?? false);
  const kind = o.kind;
  let out: number[][];
  if (typeof kind === "object" && kind !== null && "sizes" in kind) {
    const sizes = kind.sizes;
    if (sizes.length !== o.devices) {
      throw new Error(`splitData: sizes lists ${sizes.length} devices, expected ${o.devices}`);
    }
    sizes.forEach((s, k) => {
      if (!Number.isInteger(s) || s < 1) {
        throw new Error(`splitData: sizes[${k}] = ${s} must be an integer ≥ 1`);
      }
    });
    const total = sizes.reduce((s, v) => s + v, 0);
    if (total > n) throw new Error(`splitData: sizes sum to ${total} but only ${n} examples exist`);
    const order = Array.from({ length: n }, (_, i) => i);
    new KeyedRandom([o.seed, Purpose.split, 2]).shuffle(order);
    out = [];
    let start = 0;
    for (const s of sizes) {
      out.push(order.slice(start, start + s));
      start += s;
    }
  } else {
    const isIid = kind === "iid";
    let alpha = 0;
    if (!isIid) {
      if (typeof kind !== "object" || kind === null || !("dirichlet" in kind)) {
        throw new Error(
          `splitData: kind must be "iid", {dirichlet: α} or {sizes: [...]}, got ${JSON.stringify(kind)}`,
        );
      }
      alpha = kind.dirichlet;
      if (!(alpha > 0) || !Number.isFinite(alpha)) {
        throw new Error(`splitData: dirichlet α must be a finite number > 0, got ${alpha}`);
      }
    }
    if (n < o.devices * minPer) {
      throw new Error(
        `splitData: ${n} examples cannot give ${o.devices} devices ≥ ${minPer} each (minPerDevice)`,
      );
    }
    let found: number[][] | undefined;
    for (let t = 0; t < maxTries && !found; t++) {
      const rng = new KeyedRandom([o.seed, Purpose.split, isIid ? 0 : 1, t]);
      const cand = isIid ? iidAttempt(n, o.devices, rng) : dirichletAttempt(classes, o.devices, alpha, rng);
      if (cand.every((l) => l.length >= minPer)) found = cand;
    }
    if (!found) {
      throw new Error(
        `splitData: no ${
          isIid ? "iid" : `dirichlet(α=${alpha})`
        } split of ${n} examples over ${o.devices} devices ` +
          `gave every device ≥ ${minPer} examples in ${maxTries} tries; raise α, lower minPerDevice or use fewer devices`,
      );
    }
    out = found;
  }
  for (const l of out) l.sort((x, y) => x - y);
  return out;
}

/**
 * Parses a CLI split string: `iid`, `dirichlet:0.5`, `sizes:100,200,300`.
 *
 * @example
 * ```ts
 * parseSplit("dirichlet:0.5"); // { dirichlet: 0.5 }
 * ```
 */
export function parseSplit(text: string): SplitKind {
  const t = text.trim();
  if (t === "iid") return "iid";
  const colon = t.indexOf(":");
  const head = colon < 0 ? t : t.slice(0, colon);
  const rest = colon < 0 ? "" : t.slice(colon + 1).trim();
  if (head === "dirichlet") {
    const a = Number(rest);
    if (rest === "" || !Number.isFinite(a) || a <= 0) {
      throw new Error(`split "${text}": dirichlet needs a concentration α > 0, e.g. "dirichlet:0.5"`);
    }
    return { dirichlet: a };
  }
  if (head === "sizes") {
    const parts = rest.split(",").map((s) => s.trim());
    const sizes = parts.map(Number);
    if (rest === "" || sizes.some((s) => !Number.isInteger(s) || s < 1)) {
      throw new Error(
        `split "${text}": sizes needs positive integers separated by commas, e.g. "sizes:100,200,300"`,
      );
    }
    return { sizes };
  }
  throw new Error(`split "${text}": expected "iid", "dirichlet:<α>" or "sizes:<n1>,<n2>,..."`);
}
