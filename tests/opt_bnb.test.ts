/**
 * Branch-and-bound: equal to the exhaustive grid on seeded scenarios with K ≤ 4, node bounds below the best
 * value inside their box, certificates that bracket the optimum, infeasible and boundary scenarios.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { gridOracle } from "../opt/baselines.ts";
import { boxLowerBound, solveBnb } from "../opt/bnb.ts";
import {
  assertFeasible,
  buildProblem,
  drawBindingScenario,
  InfeasibleScenarioError,
  type Problem,
} from "../opt/problem.ts";
import { drawScenarioJson, parseScenario } from "../opt/scenario.ts";
import { optimize } from "../opt/solve.ts";
import { minBandwidth } from "../opt/system_model.ts";

/** min G over an affordable sub-grid of the box (an upper estimate of the box optimum; Infinity if none). */
function sampledBoxMin(prob: Problem, lo: number[], hi: number[], per = 7): number {
  const K = lo.length, g = new Array(K).fill(0);
  let best = Infinity;
  const rec = (d: number) => {
    if (d === K) {
      if (prob.usage(g) <= 1) best = Math.min(best, prob.objective(g).G);
      return;
    }
    for (let i = 0; i <= per; i++) {
      g[d] = lo[d] + (hi[d] - lo[d]) * i / per;
      rec(d + 1);
    }
  };
  rec(0);
  return best;
}

const CASES: [number, number, number][] = [[2, 0, 0.01], [2, 1, 0.01], [3, 0, 0.01], [3, 4, 0.01], [
  4,
  2,
  0.03,
]];

Deno.test("B&B equals the exhaustive grid and its certificate brackets it (K ≤ 4, seeded)", async () => {
  for (const [K, seed, step] of CASES) {
    const prob = buildProblem(drawBindingScenario(K, seed), 301);
    const grid = gridOracle(prob, step);
    const nodes: { lower: number[]; upper: number[]; lb: number }[] = [];
    const r = await solveBnb(prob, { onNode: (n) => nodes.push(n) });
    const what = `K=${K} seed=${seed}`;
    ok(r.closed, `${what}: gap not closed`);
    ok(prob.usage(r.gamma) <= 1, `${what}: B&B answer unaffordable`);
    ok(grid.feasible);
    // B&B's answer is optimal up to its certificate tolerance, so never worse than the grid by more than that
    const tol = 1e-6 + 1e-4 * r.objective;
    ok(r.objective <= grid.objective + tol, `${what}: B&B ${r.objective} worse than grid ${grid.objective}`);
    ok(
      grid.objective - r.objective <= 2e-4 * r.objective,
      `${what}: grid ${grid.objective} vs B&B ${r.objective}`,
    );
    ok(
      r.lowerBound <= grid.objective + 1e-12 && r.lowerBound <= r.objective,
      `${what}: certificate above optimum`,
    );
    ok(r.objective - r.lowerBound <= tol, `${what}: certificate gap ${r.gap}`);
    // every node's bound is below the best affordable value found inside its box
    for (const n of nodes) {
      const m = sampledBoxMin(prob, n.lower, n.upper, K === 4 ? 3 : 6);
      ok(n.lb <= m + 1e-12, `${what}: node LB ${n.lb} above a point of its box (${m})`);
    }
    ok(nodes.length >= 1);
  }
});

Deno.test("boxLowerBound: unaffordable boxes are pruned, the root bound is below the optimum", async () => {
  const prob = buildProblem(drawBindingScenario(3, 7), 301);
  const K = 3, gm = prob.gammaMax;
  const r = await solveBnb(prob);
  const root = await boxLowerBound(prob, new Array(K).fill(0), new Array(K).fill(gm));
  ok(Number.isFinite(root.lb) && root.lb <= r.objective + 1e-12);
  // a box whose cheapest corner needs more than B_tot: every device kept at most at γ = 0.05
  const tiny = await boxLowerBound(prob, new Array(K).fill(0), new Array(K).fill(0.05));
  ok(prob.usage([0.05, 0.05, 0.05]) > 1);
  strictEqual(tiny.lb, Infinity);
});

Deno.test("boundary scenarios: only γ_max affordable; plentiful bandwidth; a single device", async () => {
  // bandwidth = what γ_max needs: B&B must return (nearly) γ_max for everyone
  const j = drawScenarioJson(3, 5, 1e12);
  const loose = parseScenario(j);
  let need = 0;
  for (let k = 0; k < 3; k++) need += minBandwidth(loose, k, loose.gammaMax);
  j.bandwidth_hz = need * (1 + 1e-7);
  const tight = buildProblem(parseScenario(j), 301);
  const rt = await solveBnb(tight);
  ok(rt.closed && rt.gamma.every((g) => g > tight.gammaMax - 1e-3), `tight: ${rt.gamma}`);
  // plentiful bandwidth: the bandwidth constraint must not change the answer
  const plenty = buildProblem(parseScenario(drawScenarioJson(3, 5, 1e9)), 301);
  const a = await solveBnb(plenty), b = await solveBnb(plenty, { noBandwidth: true });
  ok(Math.abs(a.objective - b.objective) <= 1e-6 + 1e-4 * a.objective);
  ok(a.gamma.every((g) => g > 0.05 && g < 0.85), `plenty: interior optimum expected, got ${a.gamma}`);
  // K = 1
  const one = buildProblem(drawBindingScenario(1, 3), 301);
  const r1 = await solveBnb(one), g1 = gridOracle(one);
  ok(Math.abs(r1.objective - g1.objective) <= 1e-7, `K=1: ${r1.objective} vs ${g1.objective}`);
});

Deno.test("infeasible scenarios are reported naming the devices; nothing else is attempted", async () => {
  const j = drawScenarioJson(4, 1, 1e6);
  (j.devices as Record<string, number>[])[2].energy_budget_j = 50;
  const sc = parseScenario(j);
  await rejects(() => optimize(sc), (e: Error) => {
    ok(e instanceof InfeasibleScenarioError, String(e));
    deepStrictEqual(e.devices, [2]);
    ok(/device 2 cannot meet the deadline or energy budget even at gamma_max/.test(e.message), e.message);
    return true;
  });
  // every device can be served alone but not all together
  const k = drawScenarioJson(4, 1, 1e12);
  const each = parseScenario(k);
  let need = 0, most = 0;
  for (let i = 0; i < 4; i++) {
    const g = minBandwidth(each, i, each.gammaMax);
    need += g;
    most = Math.max(most, g);
  }
  k.bandwidth_hz = Math.max(most * 1.01, need * 0.9);
  try {
    assertFeasible(parseScenario(k));
    ok(false, "expected an infeasible scenario");
  } catch (e) {
    ok(
      e instanceof InfeasibleScenarioError && e.devices.length === 0 && /together need/.test(e.message),
      String(e),
    );
  }
});

Deno.test("CLI: infeasible scenario exits 1 and writes no plan; bad field exits 2 naming it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const j = drawScenarioJson(3, 1, 1e6);
    (j.devices as Record<string, number>[])[1].energy_budget_j = 20;
    await Deno.writeTextFile(`${dir}/inf.json`, JSON.stringify(j));
    const run = async (file: string) => {
      const cmd = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "tasks/optimize.ts", "--scenario", file, "--out", `${dir}/plan.json`],
        cwd: new URL("..", import.meta.url).pathname,
        stdout: "piped",
        stderr: "piped",
      });
      const o = await cmd.output();
      return { code: o.code, err: new TextDecoder().decode(o.stderr) };
    };
    const a = await run(`${dir}/inf.json`);
    strictEqual(a.code, 1, a.err);
    ok(/device 1 cannot meet/.test(a.err) && /no plan written/.test(a.err), a.err);
    await rejects(() => Deno.stat(`${dir}/plan.json`));
    (j.devices as Record<string, number>[])[1].pmax_w = -1;
    await Deno.writeTextFile(`${dir}/bad.json`, JSON.stringify(j));
    const b = await run(`${dir}/bad.json`);
    strictEqual(b.code, 2, b.err);
    ok(b.err.includes("devices[1].pmax_w: expected a positive number, got -1"), b.err);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
