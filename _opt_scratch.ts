import { buildProblem, drawBindingScenario } from "./opt/problem.ts";
import { solveBnb } from "./opt/bnb.ts";
import { solvePsca } from "./opt/psca.ts";
for (const K of [16, 32]) {
  const prob = buildProblem(drawBindingScenario(K, 0));
  const p = solvePsca(prob);
  const r = await solveBnb(prob, { incumbent: p.gamma });
  console.log(K, r.timeS, r.lpTimeS, r.nodes, r.lps);
}
