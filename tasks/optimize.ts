/**
 * `deno task optimize [--scenario FILE] [--method bnb|psca|all] [--out PLAN.json]`: chooses every device's
 * dropout rate and radio/compute resources to minimise the generalisation-error bound (B&B for the global
 * optimum, P-SCA for a fast one), prints a table per method and the baseline comparison, and writes the plan
 * that `deno task train --plan PLAN.json` consumes. Exit codes: 0 ok, 1 infeasible scenario, 2 bad input.
 * @module
 */
import { parseArgs } from "node:util";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { loadScenario } from "../opt/scenario.ts";
import { type Method, optimize } from "../opt/solve.ts";
import { formatComparison, formatPlan } from "../opt/report.ts";
import { writePlan } from "../opt/plan.ts";
import { InfeasibleScenarioError } from "../opt/problem.ts";

const HELP =
  `usage: deno task optimize [--scenario FILE] [--method bnb|psca|all] [--out PLAN.json] [--no-baselines]

  --scenario FILE   scenario JSON (default opt/scenarios/default.json; format in opt/scenarios/README.md)
  --method M        bnb (global, certified), psca (fast) or all (default: all)
  --out FILE        where to write the plan (default runs/opt/plan.json); B&B's plan when it ran
  --time-limit S    B&B time limit in seconds (default 120)
  --no-baselines    skip the baseline comparison
  --help            this text`;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        scenario: { type: "string" },
        method: { type: "string", default: "all" },
        out: { type: "string", default: "runs/opt/plan.json" },
        "time-limit": { type: "string", default: "120" },
        "no-baselines": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const method = values.method as Method;
  if (!["bnb", "psca", "all"].includes(method)) {
    console.error(`--method: expected bnb, psca or all, got ${values.method}`);
    return 2;
  }
  const timeLimit = Number(values["time-limit"]);
  if (!(timeLimit > 0)) {
    console.error(`--time-limit: expected a positive number of seconds, got ${values["time-limit"]}`);
    return 2;
  }
  const scenarioPath = values.scenario ??
    fileURLToPath(new URL("../opt/scenarios/default.json", import.meta.url));
  let sc;
  try {
    sc = await loadScenario(scenarioPath);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
  console.log(
    `scenario ${scenarioPath}: K = ${sc.devices.length} devices, B_tot ${sc.bandwidthHz} Hz, ` +
      `T_max ${sc.deadlineS} s, P_lora ${sc.adapterParams}, P_head ${sc.headParams}, gamma_max ${sc.gammaMax}`,
  );
  let out;
  try {
    out = await optimize(sc, { method, baselines: !values["no-baselines"], timeLimitS: timeLimit });
  } catch (e) {
    if (e instanceof InfeasibleScenarioError) {
      console.error(`${e.message}\nno plan written`);
      return 1;
    }
    throw e;
  }
  if (out.plans.psca) {
    console.log("\n" + formatPlan(out.plans.psca, "P-SCA (fast, best of 3 starts)"));
    for (const s of out.pscaStarts ?? []) {
      console.log(
        `  start ${s.name.padEnd(9)}: G ${s.objective.toFixed(6)}, ${s.iterations} iterations, ${
          s.timeS.toFixed(3)
        } s`,
      );
    }
    if (out.plans.bnb) {
      const gap = out.plans.psca.objective.G - out.plans.bnb.objective.G;
      console.log(
        `  gap to B&B: ${gap.toExponential(2)} (${(100 * gap / out.plans.bnb.objective.G).toFixed(4)} %)`,
      );
    }
  }
  if (out.plans.bnb) console.log("\n" + formatPlan(out.plans.bnb, "B&B (global optimum)"));
  if (out.comparison.length > 0) console.log("\n" + formatComparison(out.comparison, out.best.objective.G));
  await Deno.mkdir(dirname(values.out), { recursive: true });
  await writePlan(values.out, out.best);
  console.log(`\nplan (${out.best.method}) written to ${values.out}`);
  return 0;
}

Deno.exit(await main());
