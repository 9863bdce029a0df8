/**
 * Row-wise LayerNorm over x [rows, cols] (biased variance, like torch), saving mean and rstd per row for the
 * backward pass; the backward computes only the input gradient (gamma and beta are frozen in LoRA fine-tuning).
 *
 * On CPU adapters one invocation per row with a loop over the columns (two passes: mean, then centred variance),
 * which keeps llvmpipe free of workgroup barriers; rows are the token count (hundreds to thousands). On GPUs a
 * workgroup per row, its invocations striding over the columns and summing through workgroup memory.
 *
 * Profiler convention: forward flops 8 per element (sum, centred square, normalise, scale, shift), bytes
 * 4·(2·rows·cols + 2·cols + 2·rows); backward flops 10 per element, bytes 4·(3·rows·cols + cols + 2·rows)
 * (+ rows·cols when accumulating).
 * @module
 */
import type { Recorder } from "./recorder.ts";
import { linearGrid, requireCount, requireDistinct, requireElements, requireFinite } from "./elementwise.ts";
import { canStageMatrix, stageMatrix } from "./texture_stage.ts";

const WG = 64;

const FORWARD_WGSL = `
struct P { n: u32, stride: u32, cols: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let r = g.x + g.y * p.stride;
  if (r >= p.n) { return; }
  let base = r * p.cols;
  var s = 0.0;
  for (var c = 0u; c < p.cols; c++) { s += x[base + c]; }
  let mu = s / f32(p.cols);
  var v = 0.0;
  for (var c = 0u; c < p.cols; c++) { let d = x[base + c] - mu; v += d * d; }
  let rs = 1.0 / sqrt(v / f32(p.cols) + p.eps);
  mean[r] = mu;
  rstd[r] = rs;
  for (var c = 0u; c < p.cols; c++) { y[base + c] = (x[base + c] - mu) * rs * gamma[c] + beta[c]; }
}`;

const BACKWARD_WGSL = (accumulate: boolean) => `
struct P { n: u32, stride: u32, cols: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let r = g.x + g.y * p.stride;
  if (r >= p.n) { return; }
  let base = r * p.cols;
  let mu = mean[r];
  let rs = rstd[r];
  var sg = 0.0;
  var sgx = 0.0;
  for (var c = 0u; c < p.cols; c++) {
    let gv = dy[base + c] * gamma[c];
    sg += gv;
    sgx += gv * (x[base + c] - mu) * rs;
  }
  sg = sg / f32(p.cols);
  sgx = sgx / f32(p.cols);
  for (var c = 0u; c < p.cols; c++) {
    let xh = (x[base + c] - mu) * rs;
    let v = rs * (dy[base + c] * gamma[c] - sg - xh * sgx);
    ${accumulate ? "dx[base + c] = dx[base + c] + v;" : "dx[base + c] = v;"}
  }
}`;

// The same arithmetic in the same order, with x, dy, gamma, beta (and dx when accumulating) read from
// textures staged by texture_stage.ts and y/dx written as vec4 (cols % 64 == 0): llvmpipe's scalar
// storage-buffer loads and stores cost ~10 ns per lane, texture loads and vec4 stores are vectorised.
const TEX = (name: string, i: number) =>
  `@group(0) @binding(${i}) var ${name}: texture_storage_2d<rgba32float, read>;`;
const FORWARD_TEX_WGSL = `
struct P { n: u32, stride: u32, cols: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
${TEX("X", 1)}
${TEX("G", 2)}
${TEX("B", 3)}
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let r = g.x + g.y * p.stride;
  if (r >= p.n) { return; }
  let c4 = p.cols / 4u;
  var s = 0.0;
  for (var c = 0u; c < c4; c++) {
    let v = textureLoad(X, vec2<u32>(c, r));
    s += v.x; s += v.y; s += v.z; s += v.w;
  }
  let mu = s / f32(p.cols);
  var v = 0.0;
  for (var c = 0u; c < c4; c++) {
    let d = textureLoad(X, vec2<u32>(c, r)) - mu;
    v += d.x * d.x; v += d.y * d.y; v += d.z * d.z; v += d.w * d.w;
  }
  let rs = 1.0 / sqrt(v / f32(p.cols) + p.eps);
  mean[r] = mu;
  rstd[r] = rs;
  let base4 = r * c4;
  for (var c = 0u; c < c4; c++) {
    let t = vec2<u32>(c, 0u);
    y[base4 + c] = (textureLoad(X, vec2<u32>(c, r)) - mu) * rs * textureLoad(G, t) + textureLoad(B, t);
  }
}`;

const BACKWARD_TEX_WGSL = (accumulate: boolean) => `
struct P { n: u32, stride: u32, cols: u32 }
@group(0) @binding(0) var<uniform> p: P;
${TEX("DY", 1)}
${TEX("X", 2)}
${TEX("G", 3)}
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<vec4<f32>>;
${accumulate ? TEX("DX", 7) : ""}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let r = g.x + g.y * p.stride;
  if (r >= p.n) { return; }
  let c4 = p.cols / 4u;
  let mu = mean[r];
  let rs = rstd[r];
  var sg = 0.0;
  var sgx = 0.0;
  for (var c = 0u; c < c4; c++) {
    let gv = textureLoad(DY, vec2<u32>(c, r)) * textureLoad(G, vec2<u32>(c, 0u));
    let xc = textureLoad(X, vec2<u32>(c, r)) - mu;
    sg += gv.x;
    sgx += gv.x * xc.x * rs;
    sg += gv.y;
    sgx += gv.y * xc.y * rs;
    sg += gv.z;
    sgx += gv.z * xc.z * rs;
    sg += gv.w;
    sgx += gv.w * xc.w * rs;
  }
  sg = sg / f32(p.cols);
  sgx = sgx / f32(p.cols);
  let base4 = r * c4;
  for (var c = 0u; c < c4; c++) {
    let xh = (textureLoad(X, vec2<u32>(c, r)) - mu) * rs;
    let v = rs * (textureLoad(DY, vec2<u32>(c, r)) * textureLoad(G, vec2<u32>(c, 0u)) - sg - xh * sgx);
    ${accumulate ? "dx[base4 + c] = textureLoad(DX, vec2<u32>(c, r)) + v;" : "dx[base4 + c] = v;"}
  }
}`;

// A workgroup per row (the default on GPUs, where one invocation per row leaves the card nearly idle): its
// invocations stride over the columns and sum through workgroup memory, in a fixed order.
const WGR = 128;
const REDUCE_WGSL = `
var<workgroup> red: array<f32, ${WGR}>;
fn reduce_sum(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = ${WGR / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { red[li] = red[li] + red[li + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}`;
const ROW_MAIN = `@compute @workgroup_size(${WGR})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let r = wg.x + wg.y * p.stride;
  if (r >= p.n) { return; }
  let base = r * p.cols;`;

const FORWARD_WG_WGSL = FORWARD_WGSL.slice(0, FORWARD_WGSL.indexOf("@compute")) + REDUCE_WGSL + `
${ROW_MAIN}
  var s = 0.0;
  for (var c = li; c < p.cols; c += ${WGR}u) { s += x[base + c]; }
  let mu = reduce_sum(s, li) / f32(p.cols);
  var v = 0.0;
  for (var c = li; c < p.cols; c += ${WGR}u) { let d = x[base + c] - mu; v += d * d; }
  let rs = 1.0 / sqrt(reduce_sum(v, li) / f32(p.cols) + p.eps);
  if (li == 0u) {
    mean[r] = mu;
    rstd[r] = rs;
  }
  for (var c = li; c < p.cols; c += ${WGR}u) { y[base + c] = (x[base + c] - mu) * rs * gamma[c] + beta[c]; }
}`;

const BACKWARD_WG_WGSL = (accumulate: boolean) => {
  const head = BACKWARD_WGSL(accumulate);
  return head.slice(0, head.indexOf("@compute")) + REDUCE_WGSL + `
${ROW_MAIN}
  let mu = mean[r];
  let rs = rstd[r];
  var sg = 0.0;
  var sgx = 0.0;
  for (var c = li; c < p.cols; c += ${WGR}u) {
    let gv = dy[base + c] * gamma[c];
    sg += gv;
    sgx += gv * (x[base + c] - mu) * rs;
  }
  sg = reduce_sum(sg, li) / f32(p.cols);
  sgx = reduce_sum(sgx, li) / f32(p.cols);
  for (var c = li; c < p.cols; c += ${WGR}u) {
    let xh = (x[base + c] - mu) * rs;
    let v = rs * (dy[base + c] * gamma[c] - sg - xh * sgx);
    ${accumulate ? "dx[base + c] = dx[base + c] + v;" : "dx[base + c] = v;"}
  }
}`;
};

/**
 * LayerNorm forward: `y = (x − mean)·rstd·gamma + beta` row-wise, rstd = 1/sqrt(var + eps); writes mean and
 * rstd [rows] for the backward pass. x, y: [rows, cols]; gamma, beta: [cols]. y must not alias x.
 *
 * @example
 * ```ts
 * layerNorm(rec, { x: sum, gamma, beta, y: hidden, mean, rstd, rows: tokens, cols: 1024, eps: 1e-5 });
 * ```
 */
export function layerNorm(
  rec: Recorder,
  a: {
    x: GPUBuffer;
    gamma: GPUBuffer;
    beta: GPUBuffer;
    y: GPUBuffer;
    mean: GPUBuffer;
    rstd: GPUBuffer;
    rows: number;
    cols: number;
    eps: number;
    /** A workgroup per row (default on GPU adapters) instead of one invocation per row (CPU adapters). */
    workgroupPerRow?: boolean;
  },
): void {
  const k = "layerNorm";
  requireCount(k, "rows", a.rows);
  requireCount(k, "cols", a.cols);
  if (a.cols === 0) throw new Error("layerNorm: cols must be at least 1");
  requireFinite(k, "eps", a.eps);
  if (a.eps < 0) throw new Error(`layerNorm: eps must be >= 0, got ${a.eps}`);
  const n = a.rows * a.cols;
  requireElements(k, "x", a.x, n);
  requireElements(k, "gamma", a.gamma, a.cols);
  requireElements(k, "beta", a.beta, a.cols);
  requireElements(k, "y", a.y, n);
  requireElements(k, "mean", a.mean, a.rows);
  requireElements(k, "rstd", a.rstd, a.rows);
  requireDistinct(k, ["x", "y", "mean", "rstd"], [a.x, a.y, a.mean, a.rstd]);
  const meta = {
    label: k,
    shape: `${a.rows}x${a.cols}`,
    flops: 8 * n,
    bytes: 4 * (2 * n + 2 * a.cols + 2 * a.rows),
  };
  if (a.workgroupPerRow ?? !rec.gpu.isCpu) {
    const { groups, stride } = linearGrid(rec, a.rows, 1);
    rec.dispatch({
      pipeline: rec.gpu.pipeline("layernorm-wg", FORWARD_WG_WGSL),
      buffers: [a.x, a.gamma, a.beta, a.y, a.mean, a.rstd],
      u32: [a.rows, stride, a.cols],
      f32: [a.eps],
      groups,
      ...meta,
    });
    return;
  }
  const { groups, stride } = linearGrid(rec, a.rows, WG);
  const staged = canStageMatrix(rec.gpu, a.rows, a.cols);
  rec.dispatch({
    pipeline: staged
      ? rec.gpu.pipeline("layernorm-tex", FORWARD_TEX_WGSL)
      : rec.gpu.pipeline("layernorm", FORWARD_WGSL),
    buffers: staged
      ? [
        stageMatrix(rec, "lnX", a.x, a.rows, a.cols),
        stageMatrix(rec, "lnG", a.gamma, 1, a.cols),
        stageMatrix(rec, "lnB", a.beta, 1, a.cols),
        a.y,
        a.mean,
        a.rstd,
      ]
      : [a.x, a.gamma, a.beta, a.y, a.mean, a.rstd],
    u32: [a.rows, stride, a.cols],
    f32: [a.eps],
    groups,
    ...meta,
  });
}

/**
 * LayerNorm input gradient with frozen gamma/beta (no parameter gradients):
 * `dx (=|+=) rstd·(g − mean(g) − x̂·mean(g·x̂))` with g = dy·gamma, x̂ = (x − mean)·rstd, using the mean and
 * rstd saved by `layerNorm`. With `accumulate` the result is added to dx (e.g. a residual gradient).
 */
export function layerNormBackward(
  rec: Recorder,
  a: {
    dy: GPUBuffer;
    x: GPUBuffer;
    gamma: GPUBuffer;
    mean: GPUBuffer;
    rstd: GPUBuffer;
    dx: GPUBuffer;
    rows: number;
    cols: number;
    accumulate?: boolean;
    /** A workgroup per row (default on GPU adapters) instead of one invocation per row (CPU adapters). */
    workgroupPerRow?: boolean;
  },
): void {
  const k = "layerNormBackward";
  requireCount(k, "rows", a.rows);
  requireCount(k, "cols", a.cols);
  if (a.cols === 0) throw new Error("layerNormBackward: cols must be at least 1");
  const n = a.rows * a.cols;
  requireElements(k, "dy", a.dy, n);
  requireElements(k, "x", a.x, n);
  requireElements(k, "gamma", a.gamma, a.cols);
  requireElements(k, "mean", a.mean, a.rows);
  requireElements(k, "rstd", a.rstd, a.rows);
  requireElements(k, "dx", a.dx, n);
  for (
    const [name, b] of [["dy", a.dy], ["x", a.x], ["gamma", a.gamma], ["mean", a.mean], [
      "rstd",
      a.rstd,
    ]] as const
  ) {
    requireDistinct(k, [name, "dx"], [b, a.dx]);
  }
  const acc = a.accumulate ?? false;
  const meta = {
    label: k,
    shape: `${a.rows}x${a.cols}`,
    flops: 10 * n,
    bytes: 4 * ((acc ? 4 : 3) * n + a.cols + 2 * a.rows),
  };
  if (a.workgroupPerRow ?? !rec.gpu.isCpu) {
    const { groups, stride } = linearGrid(rec, a.rows, 1);
    rec.dispatch({
      pipeline: rec.gpu.pipeline(`layernorm-backward-wg-${acc ? "acc" : "set"}`, () => BACKWARD_WG_WGSL(acc)),
      buffers: [a.dy, a.x, a.gamma, a.mean, a.rstd, a.dx],
      u32: [a.rows, stride, a.cols],
      groups,
      ...meta,
    });
    return;
  }
  const { groups, stride } = linearGrid(rec, a.rows, WG);
  const staged = canStageMatrix(rec.gpu, a.rows, a.cols);
  const tex = (role: string, b: GPUBuffer, rows: number) => stageMatrix(rec, role, b, rows, a.cols);
  rec.dispatch({
    pipeline: staged
      ? rec.gpu.pipeline(`layernorm-backward-tex-${acc ? "acc" : "set"}`, () => BACKWARD_TEX_WGSL(acc))
      : rec.gpu.pipeline(`layernorm-backward-${acc ? "acc" : "set"}`, () => BACKWARD_WGSL(acc)),
    buffers: staged
      ? [
        tex("lnDY", a.dy, a.rows),
        tex("lnX", a.x, a.rows),
        tex("lnG", a.gamma, 1),
        a.mean,
        a.rstd,
        a.dx,
        ...(acc ? [tex("lnDX", a.dx, a.rows)] : []),
      ]
      : [a.dy, a.x, a.gamma, a.mean, a.rstd, a.dx],
    u32: [a.rows, stride, a.cols],
    groups,
    ...meta,
  });
}
