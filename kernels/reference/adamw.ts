/**
 * Float64 reference for `kernels/adamw.ts`: one torch.optim.AdamW step (decoupled weight decay, Adam with
 * bias correction), in place on Float64Arrays, skipping masked (frozen) entries.
 * @module
 */

/** Hyper-parameters of one AdamW step. */
export interface AdamWHyper {
  /** Learning rate. */
  lr: number;
  /** First-moment decay β1. */
  beta1: number;
  /** Second-moment decay β2. */
  beta2: number;
  /** Denominator epsilon. */
  eps: number;
  /** Decoupled weight decay. */
  weightDecay: number;
  /** 1-based step number (for bias correction). */
  step: number;
}

/**
 * One AdamW step in place: p −= lr·wd·p; m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²;
 * p −= lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps). Entries with mask 0 are left untouched.
 *
 * @example
 * ```ts
 * adamwRef(param, grad, m, v, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 });
 * ```
 */
export function adamwRef(
  param: Float64Array,
  grad: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  h: AdamWHyper,
  mask?: ArrayLike<number>,
): void {
  const bc1 = 1 - h.beta1 ** h.step, bc2 = 1 - h.beta2 ** h.step;
  for (let i = 0; i < param.length; i++) {
    if (mask && mask[i] === 0) continue;
    const g = grad[i];
    param[i] *= 1 - h.lr * h.weightDecay;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g;
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g * g;
    param[i] -= (h.lr / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + h.eps);
  }
}
