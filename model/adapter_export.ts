/**
 * Writes a trained adapter the way peft does (`adapter_model.safetensors` + `adapter_config.json`), so that
 * `PeftModel.from_pretrained(RobertaForSequenceClassification.from_pretrained(base, num_labels=n), dir)` loads it.
 * @module
 */
import { writeSafetensors } from "./safetensors.ts";
import type { LoraSettings } from "./names.ts";

const PEFT_MODULE: Record<string, string> = {
  query: "attention.self.query",
  key: "attention.self.key",
  value: "attention.self.value",
  "attention.output.dense": "attention.output.dense",
  "intermediate.dense": "intermediate.dense",
  "output.dense": "output.dense",
};

/**
 * peft's `target_modules` for these targets: the plain names when peft's suffix matching is unambiguous,
 * otherwise a full-match regex (`output.dense` alone would also match `attention.output.dense`).
 */
export function peftTargetModules(targets: readonly string[]): string[] | string {
  if (!targets.includes("output.dense")) return [...targets];
  const alt = targets.map((t) => PEFT_MODULE[t].replaceAll(".", "\\.")).join("|");
  return `.*\\.encoder\\.layer\\.\\d+\\.(${alt})`;
}

/** The `adapter_config.json` object peft expects. */
export function adapterConfig(lora: LoraSettings, baseModel: string): Record<string, unknown> {
  return {
    peft_type: "LORA",
    task_type: "SEQ_CLS",
    r: lora.r,
    lora_alpha: lora.alpha,
    lora_dropout: lora.dropout ?? 0,
    target_modules: peftTargetModules(lora.targets),
    modules_to_save: ["classifier", "score"],
    use_rslora: lora.rslora ?? false,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    base_model_name_or_path: baseModel,
  };
}

/**
 * Writes `dir/adapter_model.safetensors` and `dir/adapter_config.json` (each atomically).
 *
 * @example
 * ```ts
 * await saveAdapter("runs/x/adapter", await model.getAdapter(), model.lora, model.dir);
 * ```
 */
export async function saveAdapter(
  dir: string,
  adapter: Map<string, Float32Array>,
  shapes: Map<string, number[]>,
  lora: LoraSettings,
  baseModel: string,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, data] of adapter) {
    const shape = shapes.get(name);
    if (!shape) throw new Error(`saveAdapter: no shape known for ${name}`);
    tensors.set(name, { shape, data });
  }
  await writeSafetensors(`${dir}/adapter_model.safetensors`, tensors, { format: "pt" });
  const tmp = `${dir}/adapter_config.json.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, JSON.stringify(adapterConfig(lora, baseModel), null, 2) + "\n");
  await Deno.rename(tmp, `${dir}/adapter_config.json`);
}
