/**
 * One call that runs the optimiser on a scenario: feasibility check, P-SCA and/or B&B (seeded with P-SCA's
 * answer), plans checked by the independent checker, and the baselines.
 *
 * @example
 * ```ts
 * const out = await optimize(await loadScenario("opt/scenarios/default.json"), { method: "all" });
 * await writePlan("plan.json", out.best);
 * ```
 * @module
 */
import {
  type BaselineResult,
  equalSplit,
  fixedGamma,
  gridOracle,
  smallestAffordableCommonGamma,
} from "./baselines.ts";
import { solveBnb } from "./bnb.ts";
import { buildPlan, type Plan } from "./plan.ts";
import { assertFeasible, buildProblem, pushToAffordable } from "./problem.ts";
import { solvePsca } from "./psca.ts";
import type { Scenario } from "./scenario.ts";

/** Which solver(s) to run. */
export type Method = "bnb" | "psca" | "all";

/** Everything `deno task optimize` reports. */
export interface OptimizeOutput {
  /** Plans by method name ("bnb", "psca"). */
  plans: Record<string, Plan>;
  /** The plan to write (B&B when it ran, else P-SCA). */
  best: Plan;
  /** Methods and baselines for the comparison table. */
  comparison: BaselineResult[];
  /** P-SCA per-start details when it ran. */
  pscaStarts?: { name: string; objective: number; iterations: number; timeS: number }[];
}

/**
 * Solves a scenario; throws InfeasibleScenarioError (naming the devices) when even γ_max is unaffordable.
 * The returned γ of every method is affordable with the exact g_k (repaired toward γ_max if the table
 * interpolation was optimistic) and its plan passed the checker.
 */
export async function optimize(
  sc: Scenario,
  opts: { method?: Method; baselines?: boolean; timeLimitS?: number } = {},
): Promise<OptimizeOutput> {
  const method = opts.method ?? "all";
  assertFeasible(sc);
  const prob = buildProblem(sc);
  const K = sc.devices.length;
  const exact = (g: number[]) =>
    pushToAffordable(prob, g, new Array(K).fill(sc.gammaMax), prob.exactUsage) ??
      new Array(K).fill(sc.gammaMax);
  const plans: Record<string, Plan> = {};
  const comparison: BaselineResult[] = [];
  const psca = solvePsca(prob);
  let pscaStarts;
  if (method === "psca" || method === "all") {
    const g = exact(psca.gamma);
    plans.psca = buildPlan(sc, "psca", g, { solveTimeS: psca.timeS });
    comparison.push({
      name: "P-SCA (best of 3 starts)",
      feasible: true,
      gamma: g,
      objective: plans.psca.objective.G,
      timeS: psca.timeS,
    });
    pscaStarts = psca.starts.map((s) => ({
      name: s.name,
      objective: s.objective,
      iterations: s.iterations,
      timeS: s.timeS,
    }));
  }
  if (method === "bnb" || method === "all") {
    const r = await solveBnb(prob, { incumbent: psca.gamma, timeLimitS: opts.timeLimitS });
    const g = exact(r.gamma);
    const time = r.timeS + psca.timeS;
    plans.bnb = buildPlan(sc, "bnb", g, {
      certificate: { lower_bound: r.lowerBound, gap: r.gap, closed: r.closed, nodes: r.nodes, lps: r.lps },
      solveTimeS: time,
    });
    comparison.unshift({
      name: "B&B (global)",
      feasible: true,
      gamma: g,
      objective: plans.bnb.objective.G,
      timeS: time,
    });
  }
  if (opts.baselines ?? true) {
    comparison.push(fixedGamma(prob, 0, "fixed gamma 0"));
    comparison.push(fixedGamma(prob, 0.3, "fixed gamma 0.3 (reference code)"));
    comparison.push(smallestAffordableCommonGamma(prob));
    comparison.push(await equalSplit(prob));
    if (K <= 4) {
      comparison.push({ ...gridOracle(prob, K === 4 ? 0.02 : 0.01), name: "exhaustive grid (K <= 4)" });
    }
  }
  return { plans, best: plans.bnb ?? plans.psca, comparison, pscaStarts };
}
