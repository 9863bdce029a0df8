/**
 * Random weights of a RoBERTa encoder in the Hugging Face layout (`roberta.`-prefixed names, `nn.Linear` weights
 * `[out, in]`), as `deno task make-model` writes them: every weight and bias N(0, initializer_range²), LayerNorm
 * weights 1 and biases 0. Tensor `i` (its position in the name-sorted list, which is also its order in the file)
 * draws from `KeyedRandom([seed, Purpose.init, i])`, so one tensor can be produced without the others and the same
 * seed always gives the same file. No classifier: the model initialises its head itself.
 *
 * @example
 * ```ts
 * const specs = initSpecs(PRESETS.tiny);
 * const w = initTensor(PRESETS.tiny, specs[0], 0, 42);
 * ```
 * @module
 */
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import type { EncoderConfig } from "./config.ts";
import { baseLayout } from "./names.ts";
import { shapeSize } from "./safetensors.ts";

/** Name and shape of one tensor to initialise. */
export interface InitSpec {
  name: string;
  shape: number[];
}

/** The encoder's tensors (names and shapes) sorted by name; the index in this list is the tensor's RNG index. */
export function initSpecs(cfg: EncoderConfig): InitSpec[] {
  return baseLayout(cfg).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The values of tensor `spec` (number `index` in {@link initSpecs}) for `seed`: LayerNorm weight 1, LayerNorm bias 0,
 * everything else N(0, initializer_range²) from `KeyedRandom([seed, Purpose.init, index])`.
 */
export function initTensor(cfg: EncoderConfig, spec: InitSpec, index: number, seed: number): Float32Array {
  const out = new Float32Array(shapeSize(spec.shape));
  if (/LayerNorm\.(weight|gamma)$/.test(spec.name)) return out.fill(1);
  if (/LayerNorm\.(bias|beta)$/.test(spec.name)) return out;
  fillNormal(out, new KeyedRandom([seed, Purpose.init, index]), cfg.initializerRange);
  return out;
}

/** Fills `out` with N(0, std²) draws (Box-Muller, both outputs of each pair used). */
export function fillNormal(out: Float32Array, rng: KeyedRandom, std: number): void {
  for (let i = 0; i < out.length; i += 2) {
    const u1 = 1 - rng.uniform(); // (0, 1]: log is finite
    const u2 = rng.uniform();
    const r = std * Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
}
