/**
 * FedLoDrop-masked LoRA on WebGPU: the low-rank branch of y = x Wᵀ + b + s·(drop(x) Âᵀ) B̂ᵀ with
 * Â = A·diag(mA) (dropped input columns) and B̂ = diag(mB)·B (dropped output rows), forward and backward.
 * Dropped columns of A and rows of B get gradients that are exactly zero.
 *
 * lora_dropout uses the shared counter-based RNG: element x[row, col] is kept when
 * `uniform_key5(k0, k1, k2, k3, row*nIn + col) >= p` — the same decision as `keepKey(p, k0, k1, k2, k3, i)` in
 * TypeScript. The comparison is done on the integer hash against ceil(p·2^24), which is exactly equivalent
 * to the float64 `keepKey` for every p (a float32 p could round across a grid point). Kept values are scaled
 * by 1/(1-p); p = 0 compiles a variant without any RNG.
 *
 * The rank r is a compile-time constant of each variant (accumulators unrolled in registers), r <= 64.
 * The rank-r products whose masking can be moved onto a small operand (y += s·t·B̂ᵀ, dt = s·dy·B̂ and, without
 * dropout, dx += dt·Â) run on {@link gemm}; B̂ and Â live in per-Gpu scratch buffers (nOut·r and r·nIn f32,
 * grown on demand, never freed while the Gpu lives), as does dt unless `scratch` is given. On GPU adapters the
 * sums over rows (dA, dB) and over input features (t) run in splits whose partial sums go to another such
 * scratch buffer, added up in order by a second kernel ({@link LoraBackwardArgs.splitRows},
 * {@link LoraForwardArgs.splitCols}); CPU adapters sum in one pass.
 * @module
 */
import type { Gpu } from "./device.ts";
import type { Recorder } from "./recorder.ts";
import { RNG_WGSL } from "./rng.ts";
import { requireRowsOf } from "./dropout.ts";
import { gemm } from "./gemm.ts";
import { canStageFlat, canStageMatrix, FLAT_TEXEL_WGSL, stageFlat, stageMatrix } from "./texture_stage.ts";

/** Largest LoRA rank the kernels are generated for. */
export const MAX_LORA_RANK = 64;

/** Arguments of {@link loraForward}. Shapes: x [m, nIn], a [r, nIn], b [nOut, r], maskA [nIn], maskB [nOut]. */
export interface LoraForwardArgs {
  /** Layer input x [m, nIn]. */
  x: GPUBuffer;
  /** LoRA A [r, nIn]. */
  a: GPUBuffer;
  /** LoRA B [nOut, r]. */
  b: GPUBuffer;
  /** Column mask of A, f32 0/1 [nIn]. */
  maskA: GPUBuffer;
  /** Row mask of B, f32 0/1 [nOut]. */
  maskB: GPUBuffer;
  /** Output t = (drop(x) ⊙ mA) Aᵀ [m, r], saved for the backward pass. */
  t: GPUBuffer;
  /** y [m, nOut], already holding x Wᵀ + b; the LoRA branch is added to it. */
  y: GPUBuffer;
  /** Rows (tokens). */
  m: number;
  /** Input features. */
  nIn: number;
  /** Output features. */
  nOut: number;
  /** Rank. */
  r: number;
  /** Scale s (alpha / r). */
  scale: number;
  /** lora_dropout rate p in [0, 1) (default 0: no dropout, no RNG). */
  dropout?: number;
  /** Dropout key [k0, k1, k2, k3] (required when dropout > 0). */
  dropKey?: [number, number, number, number];
  /**
   * x holds rows 0, e, 2e, … of a larger input (e = rowsEvery; the [CLS] rows of [batch·seq, nIn] with e = seq),
   * and lora_dropout takes the masks of those rows' places there (`RowsOf` in `kernels/dropout.ts`). Default 1.
   */
  rowsEvery?: number;
  /**
   * Input features per split of the down-projection's sum over nIn (rounded up to a multiple of 4 where it reads
   * vec4s): each split writes a partial t into a per-Gpu scratch buffer and a second kernel adds them up.
   * Default: nIn (one pass) on CPU adapters, {@link LORA_SPLIT_COLS} on GPUs, where one invocation per row
   * leaves the card nearly idle.
   */
  splitCols?: number;
}

/** Arguments of {@link loraBackward}. */
export interface LoraBackwardArgs {
  /** Gradient of y [m, nOut]. */
  dy: GPUBuffer;
  /** Layer input x [m, nIn] (as given to the forward pass). */
  x: GPUBuffer;
  /** LoRA A [r, nIn]. */
  a: GPUBuffer;
  /** LoRA B [nOut, r]. */
  b: GPUBuffer;
  /** Column mask of A [nIn]. */
  maskA: GPUBuffer;
  /** Row mask of B [nOut]. */
  maskB: GPUBuffer;
  /** t [m, r] saved by the forward pass. */
  t: GPUBuffer;
  /** Gradient of A [r, nIn] (columns with mA = 0 get exactly 0). */
  dA: GPUBuffer;
  /** Gradient of B [nOut, r] (rows with mB = 0 get exactly 0). */
  dB: GPUBuffer;
  /** When given, the LoRA branch's input gradient is added into dx [m, nIn]. */
  dx?: GPUBuffer;
  /** Rows (tokens). */
  m: number;
  /** Input features. */
  nIn: number;
  /** Output features. */
  nOut: number;
  /** Rank. */
  r: number;
  /** Scale s. */
  scale: number;
  /** lora_dropout rate (the forward pass's). */
  dropout?: number;
  /** Dropout key (the forward pass's). */
  dropKey?: [number, number, number, number];
  /** The forward pass's {@link LoraForwardArgs.rowsEvery}. */
  rowsEvery?: number;
  /** dA += and dB += instead of = (default false). */
  accumulateGrads?: boolean;
  /**
   * Scratch for dt [m, r] (at least m·r f32). When omitted, one buffer per Gpu is allocated on first use, grown
   * when a larger m·r is needed, and reused (dispatches run in order, so sequential layers can share it).
   */
  scratch?: GPUBuffer;
  /**
   * Rows per split of the dA and dB reductions over the m rows: each split sums its rows into a per-Gpu scratch
   * buffer, and a second kernel adds the splits up (in split order). Default: m (one pass, no scratch) on CPU
   * adapters, {@link LORA_SPLIT_ROWS} on GPUs, where one invocation per column looping over every row leaves
   * the card nearly idle.
   */
  splitRows?: number;
}

/**
 * Rows per split of LoRA's dA and dB reductions on GPU adapters (see {@link LoraBackwardArgs.splitRows}). With
 * m = 1024 tokens this gives 32 splits, i.e. 32 × nIn invocations instead of nIn.
 */
export const LORA_SPLIT_ROWS = 32;

/**
 * Input features per split of LoRA's down-projection on GPU adapters (see {@link LoraForwardArgs.splitCols}).
 * With nIn = 1024 this gives 16 splits, i.e. 16 × m invocations instead of m.
 */
export const LORA_SPLIT_COLS = 64;

const scratchCache = new WeakMap<Gpu, Map<string, GPUBuffer>>();

/** A per-Gpu scratch buffer for `role` of at least `elements` f32, grown on demand and reused. */
function scratchFor(gpu: Gpu, role: string, elements: number): GPUBuffer {
  let roles = scratchCache.get(gpu);
  if (!roles) scratchCache.set(gpu, roles = new Map());
  let buf = roles.get(role);
  if (!buf || buf.size < elements * 4) {
    // The old buffer may still be referenced by recorded, unsubmitted work: let GC reclaim it, do not destroy.
    buf = gpu.buffer(elements * 4, `lora ${role} scratch`);
    roles.set(role, buf);
  }
  return buf;
}

interface Dims {
  m: number;
  /**
   * A split reduction's length per split, in its loop's steps (rows of dA and dB, texels or columns of the
   * down-projection), and the number of splits (default: one pass).
   */
  split?: { chunk: number; count: number };
  nIn: number;
  nOut: number;
  r: number;
  scale: number;
  dropout?: number;
  dropKey?: [number, number, number, number];
  rowsEvery?: number;
}

function validate(kernel: string, d: Dims, bufs: [string, GPUBuffer | undefined, number][]): void {
  for (const f of ["m", "nIn", "nOut", "r"] as const) {
    const v = d[f];
    if (!Number.isInteger(v) || v < 1 || v > 0x7fffffff) {
      throw new Error(`${kernel}: ${f} must be a positive integer, got ${v}`);
    }
  }
  if (d.r > MAX_LORA_RANK) {
    throw new Error(`${kernel}: rank r = ${d.r} exceeds MAX_LORA_RANK ${MAX_LORA_RANK}`);
  }
  if (d.m * d.nIn > 0xffffffff || d.m * d.nOut > 0xffffffff) {
    throw new Error(`${kernel}: m·nIn or m·nOut exceeds 2^32 elements`);
  }
  if (!Number.isFinite(d.scale)) throw new Error(`${kernel}: scale must be finite, got ${d.scale}`);
  requireRowsOf(kernel, { cols: d.nIn, every: d.rowsEvery ?? 1 }, d.m * d.nIn);
  const p = d.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw new Error(`${kernel}: dropout must be in [0, 1), got ${p}`);
  if (p > 0) {
    const k = d.dropKey;
    if (!Array.isArray(k) || k.length !== 4 || !k.every((w) => Number.isInteger(w))) {
      throw new Error(`${kernel}: dropout ${p} > 0 needs dropKey as four integers [k0, k1, k2, k3]`);
    }
  }
  for (const [name, buf, needed] of bufs) {
    if (!buf) continue;
    if (buf.size < needed * 4) {
      throw new Error(
        `${kernel}: buffer ${name} (${buf.label || "unlabelled"}) has ${
          buf.size / 4
        } f32 elements, needs ${needed}`,
      );
    }
  }
}

/**
 * Uniform layout shared by every LoRA kernel: u32 m, nIn, nOut, thr, k0..k3, chunk (loop steps per split of a
 * split reduction), splits (their number); f32 scale, invKeep.
 */
const PARAMS = /* wgsl */ `
struct P {
  m: u32, nIn: u32, nOut: u32, thr: u32, k0: u32, k1: u32, k2: u32, k3: u32, chunk: u32, splits: u32, every: u32,
  scale: f32, invKeep: f32,
}
@group(0) @binding(0) var<uniform> p: P;
`;

/** WGSL `drop_factor(i)`: 0 or 1/(1-p) with dropout, the constant 1 without. */
function dropWgsl(drop: boolean): string {
  if (!drop) return `fn drop_factor(i: u32) -> f32 { return 1.0; }\n`;
  return RNG_WGSL + /* wgsl */ `
fn drop_factor(i: u32) -> f32 {
  // the element's place in the larger input whose every p.every-th row x holds (the identity for every = 1)
  let j = (i / p.nIn) * p.every * p.nIn + i % p.nIn;
  // keep iff uniform_key5(..) >= p  <=>  (hash >> 8) >= ceil(p * 2^24) = p.thr (exact integer comparison)
  if ((hash_key5(p.k0, p.k1, p.k2, p.k3, j) >> 8u) >= p.thr) { return p.invKeep; }
  return 0.0;
}
`;
}

/** Whether a kernel variant applies lora_dropout to x. */
function usesDropout(kind: LoraKernel): boolean {
  return kind === "down" || kind === "down4" || kind === "dA" || kind === "dx" || kind === "down4T" ||
    kind === "dAT";
}

/** `lines` repeated for q = 0..r-1 with `$q` replaced. */
function unroll(r: number, line: string): string {
  return Array.from({ length: r }, (_, q) => line.replaceAll("$q", String(q))).join("\n");
}

const WG1 = 64;
const WG2 = 8;

/**
 * LoRA kernel variants. The `…T` variants are the same arithmetic as `down4`, `dA` and `dB` with the large
 * operands read from textures staged by `texture_stage.ts` (llvmpipe's storage-buffer loads cost ~10 ns per
 * lane, texture loads are vectorised); they need r % 4 == 0 and the staged matrix's width a multiple of 64.
 */
type LoraKernel =
  | "down"
  | "down4"
  | "maskB"
  | "maskA"
  | "dB"
  | "dA"
  | "dx"
  | "down4T"
  | "dAT"
  | "dBT"
  | "dAsum"
  | "dBsum"
  | "downsum";

/** The WGSL of one LoRA kernel variant (exported for inspection). */
export function loraWgsl(
  kind: LoraKernel,
  r: number,
  drop: boolean,
  acc: boolean,
  split = false,
) {
  const usesDrop = usesDropout(kind);
  const head = PARAMS + (usesDrop ? dropWgsl(drop) : "");
  const decl = (i: number, name: string, rw = false) =>
    `@group(0) @binding(${i}) var<storage, ${rw ? "read_write" : "read"}> ${name}: array<f32>;`;
  const store = (lhs: string, v: string) => acc ? `${lhs} = ${lhs} + ${v};` : `${lhs} = ${v};`;
  const tdecl = (i: number, name: string) =>
    `@group(0) @binding(${i}) var ${name}: texture_storage_2d<rgba32float, read>;`;
  switch (kind) {
    case "down4T": // down4 with X [m, nIn], A [r, nIn] and mA [1, nIn] matrix-staged (nIn % 64 == 0)
      return head + [tdecl(1, "X"), tdecl(2, "A"), tdecl(3, "MA"), decl(4, "T", true)].join("\n") + `
@compute @workgroup_size(${WG1}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x;
  if (i >= p.m) { return; }
${unroll(r, "  var a$q = 0.0;")}
  let n4 = p.nIn / 4u;
  let row4 = i * n4;
  let c0 = g.y * p.chunk;
  for (var c = c0; c < min(n4, c0 + p.chunk); c++) {
    let mask = textureLoad(MA, vec2<u32>(c, 0u));
    if (all(mask == vec4<f32>(0.0))) { continue; }
    let e = (row4 + c) * 4u;
    let f = vec4<f32>(drop_factor(e), drop_factor(e + 1u), drop_factor(e + 2u), drop_factor(e + 3u));
    let xv = textureLoad(X, vec2<u32>(c, i)) * mask * f;
${unroll(r, "    a$q += dot(xv, textureLoad(A, vec2<u32>(c, $qu)));")}
  }
${unroll(r, split ? `  T[(g.y * p.m + i) * ${r}u + $qu] = a$q;` : `  T[i * ${r}u + $qu] = a$q;`)}
}`;
    case "dAT": // dA with DT [m, r] flat-staged (r % 4 == 0) and X [m, nIn] matrix-staged (nIn % 64 == 0)
      return head + FLAT_TEXEL_WGSL +
        [tdecl(1, "DT"), tdecl(2, "X"), decl(3, "MA"), decl(4, "DA", true)].join("\n") + `
@compute @workgroup_size(${WG1}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let c = g.x;
  if (c >= p.nIn) { return; }
  let mask = MA[c];
${unroll(r, "  var a$q = 0.0;")}
  if (mask != 0.0) {
    let i0 = g.y * p.chunk;
    for (var i = i0; i < min(p.m, i0 + p.chunk); i++) {
      let idx = i * p.nIn + c;
      let xv = textureLoad(X, vec2<u32>(c >> 2u, i))[c & 3u] * drop_factor(idx);
${unroll(r / 4, `      let d$q = textureLoad(DT, flat_texel(i * ${r / 4}u + $qu));`)}
${Array.from({ length: r }, (_, q) => `      a${q} += d${q >> 2}[${q & 3}] * xv;`).join("\n")}
    }
  }
${
        unroll(
          r,
          "  " + (split
            ? `DA[(g.y * ${r}u + $qu) * p.nIn + c] = a$q;`
            : store(`DA[$qu * p.nIn + c]`, "select(0.0, mask * a$q, mask != 0.0)")),
        )
      }
}`;
    case "dBT": // dB with DY [m, nOut] matrix-staged (nOut % 64 == 0) and T [m, r] flat-staged (r % 4 == 0)
      return head + FLAT_TEXEL_WGSL +
        [tdecl(1, "DY"), tdecl(2, "T"), decl(3, "MB"), decl(4, "DB", true)].join("\n") + `
@compute @workgroup_size(${WG1}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let j = g.x;
  if (j >= p.nOut) { return; }
  let mask = MB[j];
${unroll(r, "  var a$q = 0.0;")}
  if (mask != 0.0) {
    let i0 = g.y * p.chunk;
    for (var i = i0; i < min(p.m, i0 + p.chunk); i++) {
      let d = textureLoad(DY, vec2<u32>(j >> 2u, i))[j & 3u];
${unroll(r / 4, `      let t$q = textureLoad(T, flat_texel(i * ${r / 4}u + $qu));`)}
${Array.from({ length: r }, (_, q) => `      a${q} += d * t${q >> 2}[${q & 3}];`).join("\n")}
    }
  }
  let f = p.scale * mask;
${
        unroll(
          r,
          "  " + (split
            ? `DB[(g.y * p.nOut + j) * ${r}u + $qu] = a$q;`
            : store(`DB[j * ${r}u + $qu]`, "select(0.0, f * a$q, mask != 0.0)")),
        )
      }
}`;
    case "down": // t[i, q] = Σ_c drop(x[i,c]) mA[c] A[q, c]   — one invocation per row
      return head + [decl(1, "X"), decl(2, "A"), decl(3, "MA"), decl(4, "T", true)].join("\n") + `
@compute @workgroup_size(${WG1}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x;
  if (i >= p.m) { return; }
${unroll(r, "  var a$q = 0.0;")}
  let row = i * p.nIn;
  let c0 = g.y * p.chunk;
  for (var c = c0; c < min(p.nIn, c0 + p.chunk); c++) {
    let mask = MA[c];
    if (mask == 0.0) { continue; }
    let xv = X[row + c] * mask * drop_factor(row + c);
${unroll(r, "    a$q += xv * A[$qu * p.nIn + c];")}
  }
${unroll(r, split ? `  T[(g.y * p.m + i) * ${r}u + $qu] = a$q;` : `  T[i * ${r}u + $qu] = a$q;`)}
}`;
    case "down4": // the same, reading x, A and mA as vec4 along the input features (nIn % 4 == 0)
      return head + [
        decl(1, "X").replace("array<f32>", "array<vec4<f32>>"),
        decl(2, "A").replace("array<f32>", "array<vec4<f32>>"),
        decl(3, "MA").replace("array<f32>", "array<vec4<f32>>"),
        decl(4, "T", true),
      ].join("\n") + `
@compute @workgroup_size(${WG1}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x;
  if (i >= p.m) { return; }
${unroll(r, "  var a$q = 0.0;")}
  let n4 = p.nIn / 4u;
  let row4 = i * n4;
  let c0 = g.y * p.chunk;
  for (var c = c0; c < min(n4, c0 + p.chunk); c++) {
    let mask = MA[c];
    if (all(mask == vec4<f32>(0.0))) { continue; }
    let e = (row4 + c) * 4u;
    let f = vec4<f32>(drop_factor(e), drop_factor(e + 1u), drop_factor(e + 2u), drop_factor(e + 3u));
    let xv = X[row4 + c] * mask * f;
${unroll(r, "    a$q += dot(xv, A[$qu * n4 + c]);")}
  }
${unroll(r, split ? `  T[(g.y * p.m + i) * ${r}u + $qu] = a$q;` : `  T[i * ${r}u + $qu] = a$q;`)}
}`;
    case "dAsum": // dA[q, c] (=|+=) mA[c] Σ_z part[z, q, c] over the row splits   — one invocation per element
      return head + [decl(1, "PART"), decl(2, "MA"), decl(3, "DA", true)].join("\n") + `
@compute @workgroup_size(${WG1}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let e = g.x;
  let n = ${r}u * p.nIn;
  if (e >= n) { return; }
  let mask = MA[e % p.nIn];
  var s = 0.0;
  if (mask != 0.0) {
    for (var z = 0u; z < p.splits; z++) { s += PART[z * n + e]; }
  }
  ${store("DA[e]", "select(0.0, mask * s, mask != 0.0)")}
}`;
    case "dBsum": // dB[j, q] (=|+=) s mB[j] Σ_z part[z, j, q] over the row splits   — one invocation per element
      return head + [decl(1, "PART"), decl(2, "MB"), decl(3, "DB", true)].join("\n") + `
@compute @workgroup_size(${WG1}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let e = g.x;
  let n = ${r}u * p.nOut;
  if (e >= n) { return; }
  let mask = MB[e / ${r}u];
  var s = 0.0;
  if (mask != 0.0) {
    for (var z = 0u; z < p.splits; z++) { s += PART[z * n + e]; }
  }
  ${store("DB[e]", "select(0.0, p.scale * mask * s, mask != 0.0)")}
}`;
    case "downsum": // t[i, q] = Σ_z part[z, i, q] over the column splits   — one invocation per element
      return head + [decl(1, "PART"), decl(2, "T", true)].join("\n") + `
@compute @workgroup_size(${WG1}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let e = g.x;
  let n = p.m * ${r}u;
  if (e >= n) { return; }
  var s = 0.0;
  for (var z = 0u; z < p.splits; z++) { s += PART[z * n + e]; }
  T[e] = s;
}`;
    case "maskB": // bHat[j, q] = B[j, q] mB[j]   — one invocation per element (exact: mB is 0 or 1)
      return head + [decl(1, "B"), decl(2, "MB"), decl(3, "BH", true)].join("\n") + `
@compute @workgroup_size(${WG1}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let e = g.x;
  if (e >= p.nOut * ${r}u) { return; }
  BH[e] = select(0.0, B[e] * MB[e / ${r}u], MB[e / ${r}u] != 0.0);
}`;
    case "maskA": // aHat[q, c] = A[q, c] mA[c]   — one invocation per element (exact: mA is 0 or 1)
      return head + [decl(1, "A"), decl(2, "MA"), decl(3, "AH", true)].join("\n") + `
@compute @workgroup_size(${WG1}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let e = g.x;
  if (e >= p.nIn * ${r}u) { return; }
  let mask = MA[e % p.nIn];
  AH[e] = select(0.0, A[e] * mask, mask != 0.0);
}`;
    case "dB": // dB[j, q] (=|+=) s mB[j] Σ_i dy[i,j] t[i,q]   — one invocation per output row j
      return head + [decl(1, "DY"), decl(2, "T"), decl(3, "MB"), decl(4, "DB", true)].join("\n") + `
@compute @workgroup_size(${WG1}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let j = g.x;
  if (j >= p.nOut) { return; }
  let mask = MB[j];
${unroll(r, "  var a$q = 0.0;")}
  if (mask != 0.0) {
    let i0 = g.y * p.chunk;
    for (var i = i0; i < min(p.m, i0 + p.chunk); i++) {
      let d = DY[i * p.nOut + j];
${unroll(r, `      a$q += d * T[i * ${r}u + $qu];`)}
    }
  }
  let f = p.scale * mask;
${
        unroll(
          r,
          "  " + (split
            ? `DB[(g.y * p.nOut + j) * ${r}u + $qu] = a$q;`
            : store(`DB[j * ${r}u + $qu]`, "select(0.0, f * a$q, mask != 0.0)")),
        )
      }
}`;
    case "dA": // dA[q, c] (=|+=) mA[c] Σ_i dt[i,q] drop(x[i,c])   — one invocation per input column c
      return head + [decl(1, "DT"), decl(2, "X"), decl(3, "MA"), decl(4, "DA", true)].join("\n") + `
@compute @workgroup_size(${WG1}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let c = g.x;
  if (c >= p.nIn) { return; }
  let mask = MA[c];
${unroll(r, "  var a$q = 0.0;")}
  if (mask != 0.0) {
    let i0 = g.y * p.chunk;
    for (var i = i0; i < min(p.m, i0 + p.chunk); i++) {
      let idx = i * p.nIn + c;
      let xv = X[idx] * drop_factor(idx);
${unroll(r, `      a$q += DT[i * ${r}u + $qu] * xv;`)}
    }
  }
${
        unroll(
          r,
          "  " + (split
            ? `DA[(g.y * ${r}u + $qu) * p.nIn + c] = a$q;`
            : store(`DA[$qu * p.nIn + c]`, "select(0.0, mask * a$q, mask != 0.0)")),
        )
      }
}`;
    case "dx": // dx[i, c] += mA[c] drop'(i,c) Σ_q dt[i,q] A[q,c]   — one invocation per element
      return head + [decl(1, "DT"), decl(2, "A"), decl(3, "MA"), decl(4, "DX", true)].join("\n") + `
@compute @workgroup_size(${WG2}, ${WG2}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let c = g.x;
  let i = g.y;
  if (i >= p.m || c >= p.nIn) { return; }
  let mask = MA[c];
  if (mask == 0.0) { return; }
  var s = 0.0;
${unroll(r, `  s += DT[i * ${r}u + $qu] * A[$qu * p.nIn + c];`)}
  let idx = i * p.nIn + c;
  DX[idx] = DX[idx] + s * mask * drop_factor(idx);
}`;
  }
}

function uniforms(d: Dims): { u32: number[]; f32: number[]; drop: boolean } {
  const p = d.dropout ?? 0;
  const [k0, k1, k2, k3] = p > 0 ? d.dropKey! : [0, 0, 0, 0];
  return {
    u32: [
      d.m,
      d.nIn,
      d.nOut,
      Math.ceil(p * 16777216),
      k0,
      k1,
      k2,
      k3,
      d.split?.chunk ?? 0xffffffff,
      d.split?.count ?? 1,
      d.rowsEvery ?? 1,
    ],
    f32: [d.scale, p > 0 ? 1 / (1 - p) : 1],
    drop: p > 0,
  };
}

function launch(
  rec: Recorder,
  kind: LoraKernel,
  d: Dims,
  buffers: (GPUBuffer | GPUTextureView)[],
  groups: [number, number?],
  acc: boolean,
  flops: number,
  bytes: number,
  split = false,
): void {
  const { u32, f32, drop } = uniforms(d);
  const usesDrop = usesDropout(kind);
  const key = `lora-${kind}:r${d.r}:drop${+(drop && usesDrop)}:acc${+acc}:split${+split}`;
  rec.dispatch({
    pipeline: rec.gpu.pipeline(key, () => loraWgsl(kind, d.r, drop && usesDrop, acc, split)),
    buffers,
    u32,
    f32,
    groups,
    label: `lora-${kind.replace(/T$/, "")}`,
    shape: `${d.m}x${d.nIn}x${d.nOut}r${d.r}${split ? `s${d.split!.count}` : ""}`,
    flops,
    bytes,
  });
}

/** Records out (=|+=) the masked (and for dB scaled) sum of the `splits` partial sums in `part`. */
function sumSplits(
  rec: Recorder,
  kind: "dAsum" | "dBsum",
  d: Dims,
  part: GPUBuffer,
  mask: GPUBuffer,
  out: GPUBuffer,
  cols: number,
  acc: boolean,
): void {
  const n = d.r * cols, splits = d.split!.count;
  launch(
    rec,
    kind,
    d,
    [part, mask, out],
    [Math.ceil(n / WG1)],
    acc,
    splits * n,
    4 * (splits * n + cols + n * (acc ? 2 : 1)),
  );
}

function noAlias(kernel: string, out: [string, GPUBuffer], ins: [string, GPUBuffer][]): void {
  for (const [name, b] of ins) {
    if (b === out[1]) throw new Error(`${kernel}: output ${out[0]} must not be the same buffer as ${name}`);
  }
}

/**
 * Records the masked LoRA forward: t = (drop(x) ⊙ mA) Aᵀ and y += s·(t Bᵀ) ⊙ mB (three dispatches: the
 * down-projection, B̂ = diag(mB)·B into a per-Gpu scratch buffer, and y += s·t·B̂ᵀ by {@link gemm}).
 *
 * @example
 * ```ts
 * gemm(rec, { a: x, b: wq, bias: bq, c: q, m, n: hidden, k: hidden, transB: true }); // q = x Wᵀ + b
 * loraForward(rec, { x, a: loraA, b: loraB, maskA, maskB, t, y: q, m, nIn: hidden, nOut: hidden, r: 8, scale: 2,
 *   dropout: 0.1, dropKey: [seed, Purpose.dropout, step, tensorId] });
 * ```
 */
export function loraForward(rec: Recorder, args: LoraForwardArgs): void {
  const { m, nIn, nOut, r } = args;
  validate("loraForward", args, [
    ["x", args.x, m * nIn],
    ["a", args.a, r * nIn],
    ["b", args.b, nOut * r],
    ["maskA", args.maskA, nIn],
    ["maskB", args.maskB, nOut],
    ["t", args.t, m * r],
    ["y", args.y, m * nOut],
  ]);
  noAlias("loraForward", ["t", args.t], [["x", args.x], ["a", args.a], ["maskA", args.maskA]]);
  noAlias("loraForward", ["y", args.y], [["t", args.t], ["b", args.b], ["maskB", args.maskB]]);
  const gpu = rec.gpu;
  const sc = args.splitCols;
  if (sc !== undefined && (!Number.isInteger(sc) || sc < 1)) {
    throw new Error(`loraForward: splitCols must be a positive integer, got ${sc}`);
  }
  const downT = r % 4 === 0 && canStageMatrix(gpu, m, nIn);
  const kind = downT ? "down4T" : nIn % 4 === 0 ? "down4" : "down";
  // The down-projection's loop runs over texels (4 input features) in the vec4 variants, over features otherwise.
  const steps = kind === "down" ? nIn : nIn / 4;
  const cols = Math.min(nIn, sc ?? (gpu.isCpu ? nIn : LORA_SPLIT_COLS));
  const chunk = kind === "down" ? cols : Math.ceil(cols / 4);
  const splits = Math.ceil(steps / chunk);
  const dims: Dims = { ...args, split: splits > 1 ? { chunk, count: splits } : undefined };
  // With splits, each writes its partial t into `part` and a second kernel adds them up (in split order).
  const part = splits > 1 ? scratchFor(gpu, "split", splits * m * r) : null;
  launch(
    rec,
    kind,
    dims,
    downT
      ? [
        stageMatrix(rec, "loraX", args.x, m, nIn),
        stageMatrix(rec, "loraA", args.a, r, nIn),
        stageMatrix(rec, "loraMA", args.maskA, 1, nIn),
        part ?? args.t,
      ]
      : [args.x, args.a, args.maskA, part ?? args.t],
    [Math.ceil(m / WG1), splits],
    false,
    2 * m * nIn * r,
    4 * (m * nIn + r * nIn + nIn + splits * m * r),
    splits > 1,
  );
  if (part) {
    launch(
      rec,
      "downsum",
      dims,
      [part, args.t],
      [Math.ceil(m * r / WG1)],
      false,
      splits * m * r,
      4 * (splits + 1) * m * r,
    );
  }
  // y += s·t·(diag(mB) B)ᵀ with the GEMM: masking B's rows first is exact (mB is 0/1) and the GEMM is far
  // faster than a per-element kernel (it loads each operand once per 4 k-steps).
  const bHat = scratchFor(rec.gpu, "bHat", nOut * r);
  noAlias("loraForward", ["bHat", bHat], [["b", args.b], ["maskB", args.maskB]]);
  launch(
    rec,
    "maskB",
    args,
    [args.b, args.maskB, bHat],
    [Math.ceil(nOut * r / WG1)],
    false,
    nOut * r,
    4 * (2 * nOut * r + nOut),
  );
  gemm(rec, {
    a: args.t,
    b: bHat,
    c: args.y,
    m,
    n: nOut,
    k: r,
    transB: true,
    alpha: args.scale,
    accumulate: true,
  });
}

/**
 * Records the masked LoRA backward: dB (=|+=) s·((dy ⊙ mB)ᵀ t), dt = s·(dy ⊙ mB) B into scratch (via
 * B̂ = diag(mB)·B and {@link gemm}), dA (=|+=) dtᵀ (drop(x) ⊙ mA), and dx += drop'((dt A) ⊙ mA) when dx is given
 * (via Â = A·diag(mA) and {@link gemm} when there is no lora_dropout).
 * Rows of dB with mB = 0 and columns of dA with mA = 0 are written as exactly 0 (or left unchanged when
 * accumulating).
 *
 * @example
 * ```ts
 * loraBackward(rec, { dy: dq, x, a: loraA, b: loraB, maskA, maskB, t, dA, dB, dx, m, nIn: hidden, nOut: hidden,
 *   r: 8, scale: 2, dropout: 0.1, dropKey: sameKeyAsForward });
 * ```
 */
export function loraBackward(rec: Recorder, args: LoraBackwardArgs): void {
  const { m, nIn, nOut, r } = args;
  validate("loraBackward", args, [
    ["dy", args.dy, m * nOut],
    ["x", args.x, m * nIn],
    ["a", args.a, r * nIn],
    ["b", args.b, nOut * r],
    ["maskA", args.maskA, nIn],
    ["maskB", args.maskB, nOut],
    ["t", args.t, m * r],
    ["dA", args.dA, r * nIn],
    ["dB", args.dB, nOut * r],
    ["dx", args.dx, m * nIn],
    ["scratch", args.scratch, m * r],
  ]);
  const sr = args.splitRows;
  if (sr !== undefined && (!Number.isInteger(sr) || sr < 1)) {
    throw new Error(`loraBackward: splitRows must be a positive integer, got ${sr}`);
  }
  const dt = args.scratch ?? scratchFor(rec.gpu, "dt", m * r);
  const acc = args.accumulateGrads ?? false;
  noAlias("loraBackward", ["dB", args.dB], [["dy", args.dy], ["t", args.t], ["maskB", args.maskB]]);
  noAlias("loraBackward", ["scratch", dt], [["dy", args.dy], ["b", args.b], ["maskB", args.maskB]]);
  noAlias("loraBackward", ["dA", args.dA], [["scratch", dt], ["x", args.x], ["maskA", args.maskA]]);
  if (args.dx) {
    noAlias("loraBackward", ["dx", args.dx], [["scratch", dt], ["a", args.a], ["maskA", args.maskA]]);
  }
  const gpu = rec.gpu;
  const rows = Math.min(m, args.splitRows ?? (gpu.isCpu ? m : LORA_SPLIT_ROWS));
  const splits = Math.ceil(m / rows);
  const split = splits > 1;
  const dims: Dims = { ...args, split: split ? { chunk: rows, count: splits } : undefined };
  // With splits, dB and dA are first summed per split into `part` (one scratch, used by one of them at a time).
  const part = split ? scratchFor(gpu, "split", splits * r * Math.max(nIn, nOut)) : null;
  const dBT = r % 4 === 0 && canStageMatrix(gpu, m, nOut) && canStageFlat(gpu, m * r);
  launch(
    rec,
    dBT ? "dBT" : "dB",
    dims,
    dBT
      ? [
        stageMatrix(rec, "loraDY", args.dy, m, nOut),
        stageFlat(rec, "loraT", args.t, m * r),
        args.maskB,
        part ?? args.dB,
      ]
      : [args.dy, args.t, args.maskB, part ?? args.dB],
    [Math.ceil(nOut / WG1), splits],
    acc && !split,
    2 * m * nOut * r,
    4 * (m * nOut + m * r + nOut + nOut * r * (split ? splits : acc ? 2 : 1)),
    split,
  );
  if (part) sumSplits(rec, "dBsum", dims, part, args.maskB, args.dB, nOut, acc);
  // dt = s·(dy ⊙ mB)·B = s·dy·(diag(mB) B): exact (mB is 0/1), and the GEMM is much faster than a row loop.
  const bHat = scratchFor(rec.gpu, "bHat", nOut * r);
  noAlias("loraBackward", ["bHat", bHat], [["b", args.b], ["maskB", args.maskB]]);
  launch(
    rec,
    "maskB",
    args,
    [args.b, args.maskB, bHat],
    [Math.ceil(nOut * r / WG1)],
    false,
    nOut * r,
    4 * (2 * nOut * r + nOut),
  );
  gemm(rec, { a: args.dy, b: bHat, c: dt, m, n: r, k: nOut, alpha: args.scale });
  const dAT = r % 4 === 0 && canStageMatrix(gpu, m, nIn) && canStageFlat(gpu, m * r);
  launch(
    rec,
    dAT ? "dAT" : "dA",
    dims,
    dAT
      ? [
        stageFlat(rec, "loraDT", dt, m * r),
        stageMatrix(rec, "loraX", args.x, m, nIn),
        args.maskA,
        part ?? args.dA,
      ]
      : [dt, args.x, args.maskA, part ?? args.dA],
    [Math.ceil(nIn / WG1), splits],
    acc && !split,
    2 * m * nIn * r,
    4 * (m * r + m * nIn + nIn + r * nIn * (split ? splits : acc ? 2 : 1)),
    split,
  );
  if (part) sumSplits(rec, "dAsum", dims, part, args.maskA, args.dA, nIn, acc);
  if (args.dx && (args.dropout ?? 0) === 0) {
    // Without lora_dropout: dx += dt·(A diag(mA)) by the GEMM (masking A's columns first is exact).
    const aHat = scratchFor(rec.gpu, "aHat", r * nIn);
    noAlias("loraBackward", ["aHat", aHat], [["a", args.a], ["maskA", args.maskA]]);
    launch(
      rec,
      "maskA",
      args,
      [args.a, args.maskA, aHat],
      [Math.ceil(r * nIn / WG1)],
      false,
      r * nIn,
      4 * (2 * r * nIn + nIn),
    );
    gemm(rec, { a: dt, b: aHat, c: args.dx, m, n: nIn, k: r, accumulate: true });
  } else if (args.dx) {
    launch(
      rec,
      "dx",
      args,
      [dt, args.a, args.maskA, args.dx],
      [Math.ceil(nIn / WG2), Math.ceil(m / WG2)],
      true,
      2 * m * nIn * r + 2 * m * nIn,
      4 * (m * r + r * nIn + nIn + 2 * m * nIn),
    );
  }
}
