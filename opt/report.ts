/**
 * Text tables for `deno task optimize`: one per method (objective, its terms, γ_k, bandwidth, every device's
 * latency and energy against its limits, solve time, certificate) and the baseline comparison.
 *
 * @example
 * ```ts
 * console.log(formatPlan(plan, "B&B (global)"));
 * ```
 * @module
 */
import type { BaselineResult } from "./baselines.ts";
import type { Plan } from "./plan.ts";

function fix(x: number, d: number, w: number): string {
  return (Number.isFinite(x) ? x.toFixed(d) : String(x)).padStart(w);
}

/** A method's plan as a table. */
export function formatPlan(plan: Plan, title: string, deadlineS?: number): string {
  const o = plan.objective;
  const lines: string[] = [];
  lines.push(`== ${title} ==`);
  lines.push(
    `G = ${o.G.toFixed(6)}  (Phi_emp ${o.emp_term.toFixed(6)} + Phi_gap ${o.gap_term.toFixed(6)}, s_bar ${
      o.sbar.toFixed(4)
    })  solve time ${plan.solve_time_s.toFixed(3)} s`,
  );
  const c = plan.certificate;
  if (c) {
    lines.push(
      `certificate: lower bound ${c.lower_bound.toFixed(6)}, gap ${c.gap.toExponential(2)} (${
        c.closed ? "closed" : "NOT closed: limit reached"
      }), ${c.nodes} nodes, ${c.lps} LPs`,
    );
  }
  lines.push(
    `bandwidth used ${(plan.bandwidth_used_hz / 1e3).toFixed(1)} kHz of ${
      (plan.bandwidth_total_hz / 1e3).toFixed(1)
    } kHz`,
  );
  const T = deadlineS ?? (plan.scenario.deadline_s as number);
  lines.push(
    "  dev     N  gamma   B(kHz)    p(W)  f(GHz)   t_dl(s) t_comp(s)  t_up(s)  latency/T(s)   energy/budget(J)",
  );
  plan.devices.forEach((d, k) => {
    lines.push(
      `  ${String(k).padStart(3)} ${String(d.samples).padStart(5)} ${fix(d.gamma, 4, 6)} ${
        fix(d.bandwidth_hz / 1e3, 1, 8)
      } ${fix(d.power_w, 4, 7)} ${fix(d.freq_hz / 1e9, 3, 7)} ${fix(d.download_s, 2, 9)} ${
        fix(d.compute_s, 2, 9)
      } ${fix(d.upload_s, 2, 8)} ${fix(d.latency_s, 2, 7)}/${String(T).padEnd(5)} ${fix(d.energy_j, 1, 8)}/${
        String(d.energy_budget_j).padEnd(7)
      }`,
    );
  });
  return lines.join("\n");
}

/** The comparison of methods and baselines, relative to `reference` (the B&B optimum when it ran). */
export function formatComparison(rows: BaselineResult[], reference?: number): string {
  const lines = [
    "== comparison ==",
    "  method                               G          vs best    time(s)  gamma",
  ];
  for (const r of rows) {
    const rel = reference !== undefined && r.feasible
      ? `${(100 * (r.objective / reference - 1)).toFixed(3)} %`
      : "";
    const g = r.gamma.length <= 12 ? r.gamma.map((x) => x.toFixed(2)).join(" ") : `${r.gamma.length} values`;
    lines.push(
      `  ${r.name.padEnd(34)} ${
        r.feasible ? r.objective.toFixed(6).padStart(10) : "infeasible".padStart(10)
      } ${rel.padStart(10)} ${r.timeS.toFixed(3).padStart(9)}  ${r.feasible ? g : r.reason}`,
    );
  }
  return lines.join("\n");
}
