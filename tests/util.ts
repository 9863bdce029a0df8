/** Shared test helpers: seeded inputs, poisoning, relative error that never lets NaN pass. */
import { KeyedRandom, Purpose } from "../kernels/rng.ts";

/** A seeded random Float32Array with entries uniform in [lo, hi). */
export function randomF32(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = new KeyedRandom([seed, Purpose.test]);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r.uniform();
  return a;
}

/** A seeded random Float64Array with entries uniform in [lo, hi) (same values as randomF32 before rounding). */
export function randomF64(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  return Float64Array.from(randomF32(n, seed, lo, hi));
}

/** NaN bit pattern used to poison outputs before a kernel writes them. */
export function poison(n: number): Float32Array {
  return new Float32Array(n).fill(NaN);
}

/**
 * max |got - want| / max(max |want|, floor). Returns Infinity if any value is NaN or infinite or lengths differ,
 * so a poisoned output that a kernel did not overwrite never passes.
 */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>, floor = 1e-6): number {
  if (got.length !== want.length) return Infinity;
  let num = 0, den = floor;
  for (let i = 0; i < got.length; i++) {
    const g = got[i], w = want[i];
    if (!Number.isFinite(g) || !Number.isFinite(w)) return Infinity;
    num = Math.max(num, Math.abs(g - w));
    den = Math.max(den, Math.abs(w));
  }
  return num / den;
}

/**
 * Asserts relErr(got, want, floor) <= tol with a message naming what was compared. `floor` (default 1e-6) is
 * the smallest denominator: give the size of the terms an output is computed from where the output is a
 * cancellation whose exact value may be 0.
 */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what: string,
  floor = 1e-6,
): void {
  const e = relErr(got, want, floor);
  if (!(e <= tol)) {
    let worst = 0;
    for (let i = 0; i < Math.min(got.length, want.length); i++) {
      if (!(Math.abs(got[i] - want[i]) <= Math.abs(got[worst] - want[worst]))) worst = i;
    }
    throw new Error(
      `${what}: relative error ${e} > ${tol} (lengths ${got.length}/${want.length}; worst at ${worst}: got ${
        got[worst]
      }, want ${want[worst]})`,
    );
  }
}
