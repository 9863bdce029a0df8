/**
 * `deno task bench opt [--seeds N] [--time-limit S] [--k 2,4,8,16,32]`: B&B solve time, nodes, LPs and
 * certificate gap, and P-SCA time and gap to B&B, on scenarios drawn like the default with K devices. The
 * bandwidth is set so that it binds: B_tot = Σ g_k(γ_max) + 0.25·(Σ g_k(0.4) − Σ g_k(γ_max)) (the default
 * scenario sits at about this point), so every device is affordable at γ_max but not all at the
 * unconstrained optimum.
 * @module
 */
import { parseArgs } from "node:util";
import { buildProblem, drawBindingScenario } from "../opt/problem.ts";
import { glpk, solveBnb } from "../opt/bnb.ts";
import { solvePsca } from "../opt/psca.ts";

/** Runs the benchmark and prints one row per (K, seed). */
export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      seeds: { type: "string", default: "1" },
      "time-limit": { type: "string", default: "120" },
      k: { type: "string", default: "2,4,8,16,32" },
    },
  });
  const seeds = Number(values.seeds), limit = Number(values["time-limit"]);
  const ks = values.k.split(",").map(Number);
  if (!(seeds >= 1) || !(limit > 0) || ks.some((k) => !(Number.isInteger(k) && k >= 1))) {
    throw new Error("bench opt: --seeds, --time-limit and --k must be positive (k integers)");
  }
  await glpk();
  console.log("B&B (coupled LP per node, glpk.js) and P-SCA (3 starts) on binding-bandwidth scenarios");
  console.log(
    "   K seed  B_tot(kHz)  table(s) |  B&B G      time(s) in LPs  nodes    LPs   cert.gap  closed | P-SCA time(s)  gap to B&B",
  );
  for (const k of ks) {
    for (let seed = 0; seed < seeds; seed++) {
      const sc = drawBindingScenario(k, seed);
      const t0 = performance.now();
      const prob = buildProblem(sc);
      const tTable = (performance.now() - t0) / 1000;
      const p = solvePsca(prob);
      const r = await solveBnb(prob, { incumbent: p.gamma, timeLimitS: limit });
      const gap = (p.objective - r.objective) / r.objective;
      console.log(
        `${String(k).padStart(4)} ${String(seed).padStart(4)} ${
          (sc.bandwidthHz / 1e3).toFixed(1).padStart(11)
        } ${tTable.toFixed(2).padStart(9)} | ${r.objective.toFixed(6)} ${r.timeS.toFixed(2).padStart(8)} ${
          r.lpTimeS.toFixed(2).padStart(6)
        } ${String(r.nodes).padStart(6)} ${String(r.lps).padStart(6)} ${
          r.gap.toExponential(1).padStart(10)
        } ${String(r.closed).padStart(7)} | ${p.timeS.toFixed(3).padStart(13)} ${
          (100 * gap).toFixed(4).padStart(9)
        } %`,
      );
    }
  }
  console.log(
    "B&B time excludes the g_k tables (column table) and P-SCA (its incumbent); gap tolerance 1e-6 + 1e-4|UB|.",
  );
}
