/**
 * One counter-based random generator for the whole project: a murmur3-style hash of a tuple of u32 words
 * (seed, purpose, round, device, step, tensor, index …). The same function exists in TypeScript (host: data
 * order, FedLoDrop masks, initialisation) and in WGSL (`RNG_WGSL`: dropout), so a value is a pure function of
 * its key on both sides and reruns and resumes are exact.
 * @module
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function rotl(x: number, r: number): number {
  return ((x << r) | (x >>> (32 - r))) >>> 0;
}

/** Mixes one 32-bit word into the hash state. */
export function hashMix(h: number, k: number): number {
  k = Math.imul(k >>> 0, C1);
  k = rotl(k, 15);
  k = Math.imul(k, C2);
  h = (h ^ k) >>> 0;
  h = rotl(h, 13);
  return (Math.imul(h, 5) + 0xe6546b64) >>> 0;
}

/** Final avalanche of the hash state. */
export function hashFinal(h: number): number {
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x85ebca6b);
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Hash of a key tuple to a u32. */
export function hashKey(...words: number[]): number {
  let h = 0x9747b28c;
  for (const w of words) h = hashMix(h, w >>> 0);
  return hashFinal(hashMix(h, words.length));
}

/** Uniform float in [0, 1) from a key tuple (24 bits of resolution, identical in WGSL). */
export function uniformKey(...words: number[]): number {
  return (hashKey(...words) >>> 8) * (1 / 16777216);
}

/** Key-dropout: true when the element identified by (k0, k1, k2, k3, index) is kept at drop rate p. */
export function keepKey(p: number, k0: number, k1: number, k2: number, k3: number, index: number): boolean {
  return uniformKey(k0, k1, k2, k3, index) >= p;
}

/**
 * WGSL with the same functions: `hash_key5(k0, k1, k2, k3, i)` and `uniform_key5(...)`, `keep_key5(p, ...)`.
 * Include it at the top of a kernel that needs randomness.
 */
export const RNG_WGSL = /* wgsl */ `
fn rng_rotl(x: u32, r: u32) -> u32 { return (x << r) | (x >> (32u - r)); }
fn rng_mix(h0: u32, k0: u32) -> u32 {
  var k = k0 * 0xcc9e2d51u;
  k = rng_rotl(k, 15u);
  k = k * 0x1b873593u;
  var h = h0 ^ k;
  h = rng_rotl(h, 13u);
  return h * 5u + 0xe6546b64u;
}
fn rng_final(h0: u32) -> u32 {
  var h = h0 ^ (h0 >> 16u);
  h = h * 0x85ebca6bu;
  h = h ^ (h >> 13u);
  h = h * 0xc2b2ae35u;
  return h ^ (h >> 16u);
}
fn hash_key5(k0: u32, k1: u32, k2: u32, k3: u32, i: u32) -> u32 {
  var h = 0x9747b28cu;
  h = rng_mix(h, k0); h = rng_mix(h, k1); h = rng_mix(h, k2); h = rng_mix(h, k3); h = rng_mix(h, i);
  return rng_final(rng_mix(h, 5u));
}
fn uniform_key5(k0: u32, k1: u32, k2: u32, k3: u32, i: u32) -> f32 {
  return f32(hash_key5(k0, k1, k2, k3, i) >> 8u) * (1.0 / 16777216.0);
}
fn keep_key5(p: f32, k0: u32, k1: u32, k2: u32, k3: u32, i: u32) -> bool {
  return uniform_key5(k0, k1, k2, k3, i) >= p;
}
`;

/**
 * A seeded stream of random numbers for host-side choices, derived from a key so that every consumer
 * (data order, masks, initialisation) has its own independent, reproducible stream.
 *
 * @example
 * ```ts
 * const r = new KeyedRandom([seed, PURPOSE_DATA, round, device]);
 * const x = r.uniform(); // [0, 1)
 * ```
 */
export class KeyedRandom {
  readonly key: number[];
  #counter = 0;

  constructor(key: number[]) {
    this.key = key.map((k) => k >>> 0);
  }

  /** Next u32. */
  u32(): number {
    return hashKey(...this.key, this.#counter++);
  }

  /** Next uniform double in [0, 1) with 53 bits. */
  uniform(): number {
    const hi = this.u32() >>> 5;
    const lo = this.u32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u1 = 1 - this.uniform();
    const u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Gamma(shape, 1) by Marsaglia-Tsang (for Dirichlet splits). */
  gamma(shape: number): number {
    if (shape < 1) return this.gamma(shape + 1) * Math.pow(this.uniform() || 1e-300, 1 / shape);
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number, v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.uniform();
      if (u < 1 - 0.0331 * x ** 4) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T>(a: T[] | Int32Array | Uint32Array): void {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
  }
}

/** Purpose words that separate the project's random streams (first word after the seed). */
export const Purpose = {
  data: 1,
  split: 2,
  mask: 3,
  dropout: 4,
  init: 5,
  participation: 6,
  test: 7,
  fading: 8,
  psca: 9,
} as const;
