/**
 * `deno task bench <name> [flags]`: runs one benchmark module `bench/<name>.ts` (each exports `run(args)`).
 * With no name it lists them.
 * @module
 */
const BENCHES: Record<string, { file: string; what: string }> = {
  gemm: { file: "./gemm.ts", what: "WGSL GEMM and LoRA shapes vs a TypeScript loop and numpy (OpenBLAS)" },
  opt: { file: "./opt.ts", what: "B&B and P-SCA solve time, nodes and gap for K in {2,4,8,16,32}" },
  step: { file: "./step.ts", what: "RoBERTa forward and training step: time, tokens/s, GFLOP/s, memory" },
};

const [name, ...rest] = Deno.args;
if (!name || !(name in BENCHES)) {
  console.log("usage: deno task bench <name> [flags]\n");
  for (const [k, v] of Object.entries(BENCHES)) console.log(`  ${k.padEnd(6)} ${v.what}`);
  Deno.exit(name ? 2 : 0);
}
const mod = await import(BENCHES[name].file);
try {
  await mod.run(rest);
} catch (e) {
  // A benchmark's own input errors ("bench <name>: …") say what to do: no stack trace. Anything else is a bug.
  if (!(e instanceof Error && e.message.startsWith(`bench ${name}:`))) throw e;
  console.error(e.message);
  Deno.exit(2);
}
