/** P-SCA: never below the certified B&B optimum, close to it, affordable, deterministic. */
import { deepStrictEqual, ok } from "node:assert/strict";
import { solveBnb } from "../opt/bnb.ts";
import { buildProblem, drawBindingScenario } from "../opt/problem.ts";
import { solvePsca } from "../opt/psca.ts";
import { drawScenarioJson, parseScenario } from "../opt/scenario.ts";

Deno.test("P-SCA is never below the B&B lower bound and within 1 % of the optimum (seeded scenarios)", async () => {
  for (const [K, seed, position] of [[3, 0, 0.25], [5, 1, 0.25], [8, 2, 0.5], [6, 3, 0.1]]) {
    const prob = buildProblem(drawBindingScenario(K, seed, position), 301);
    const p = solvePsca(prob);
    const r = await solveBnb(prob, { incumbent: p.gamma });
    const what = `K=${K} seed=${seed}`;
    ok(r.closed, `${what}: B&B did not close`);
    ok(prob.usage(p.gamma) <= 1, `${what}: P-SCA answer unaffordable`);
    ok(p.gamma.every((g) => g >= 0 && g <= prob.gammaMax));
    ok(
      p.objective >= r.lowerBound - 1e-9,
      `${what}: P-SCA ${p.objective} below the certified bound ${r.lowerBound}`,
    );
    ok(p.objective <= r.objective * 1.01, `${what}: P-SCA ${p.objective} vs B&B ${r.objective}`);
    for (const s of p.starts) {
      ok(
        prob.usage(s.gamma) <= 1 && s.objective >= p.objective && s.iterations >= 1,
        `${what}: start ${s.name}`,
      );
    }
  }
});

Deno.test("P-SCA with plentiful bandwidth reaches the unconstrained optimum; it is deterministic", async () => {
  const prob = buildProblem(parseScenario(drawScenarioJson(4, 6, 1e9)), 181);
  const p = solvePsca(prob), q = solvePsca(prob);
  deepStrictEqual(p.gamma, q.gamma);
  const r = await solveBnb(prob, { noBandwidth: true });
  ok(
    p.objective >= r.lowerBound - 1e-9 && p.objective <= r.objective + 1e-5,
    `${p.objective} vs ${r.objective}`,
  );
});
