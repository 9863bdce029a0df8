/** Plans: built plans pass the independent checker, hand-made violations are caught, files round-trip. */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { checkAllocation, type PlannedDevice, recomputeCost } from "../opt/checker.ts";
import {
  buildPlan,
  parsePlan,
  type Plan,
  planScenario,
  readPlan,
  scenarioToJson,
  writePlan,
} from "../opt/plan.ts";
import { buildProblem, drawBindingScenario } from "../opt/problem.ts";
import { solvePsca } from "../opt/psca.ts";
import { allocate, minBandwidth } from "../opt/system_model.ts";

const sc = drawBindingScenario(4, 8);

function solvedPlan(): Plan {
  const prob = buildProblem(sc, 181);
  return buildPlan(sc, "psca", solvePsca(prob).gamma);
}

Deno.test("checker: the solver's plan passes and its numbers match the independent recomputation", () => {
  const plan = solvedPlan();
  deepStrictEqual(checkAllocation(sc, plan.devices), []);
  ok(plan.bandwidth_used_hz <= sc.bandwidthHz * (1 + 1e-9));
  plan.devices.forEach((d, k) => {
    const c = recomputeCost(sc, k, d);
    ok(Math.abs(c.latencyS / d.latency_s - 1) < 1e-9 && Math.abs(c.energyJ / d.energy_j - 1) < 1e-9);
    ok(d.latency_s <= sc.deadlineS * (1 + 1e-9) && d.energy_j <= d.energy_budget_j * (1 + 1e-9));
  });
  // a device given exactly g_k is on the boundary: it meets both limits within the checker's tolerance
  const g = minBandwidth(sc, 0, 0.5);
  const a = allocate(sc, 0, 0.5, g);
  const one: PlannedDevice = { gamma: 0.5, bandwidth_hz: g, power_w: a.powerW, freq_hz: a.freqHz };
  const rest = plan.devices.slice(1).map((d) => ({ ...d, bandwidth_hz: 1 }));
  ok(!checkAllocation(sc, [one, ...rest]).some((m) => m.startsWith("device 0")));
});

Deno.test("checker: hand-made violating plans are rejected with the right reason", () => {
  const plan = solvedPlan();
  const base = () => plan.devices.map((d) => ({ ...d }));
  const cases: [(d: PlannedDevice[]) => void, RegExp][] = [
    [(d) => (d[1].power_w = sc.devices[1].pmaxW * 1.5), /^device 1: power .* > pmax/],
    [(d) => (d[2].freq_hz = sc.devices[2].fmaxHz * 1.1), /^device 2: clock .* > fmax/],
    [(d) => (d[0].bandwidth_hz *= 1.5), /^bandwidth: devices use .* > bandwidth_hz/],
    [(d) => (d[3].freq_hz *= 0.7), /^device 3: latency .* > deadline/],
    [(d) => (d[3].gamma = 0.95), /^device 3: gamma 0.95 outside/],
    [(d) => (d[1].latency_s = 1), /^device 1: reported latency 1 s differs/],
    [(d) => (d[2].energy_j = 1), /^device 2: reported energy 1 J differs/],
    [(d) => (d[0].power_w = NaN), /^device 0: power_w is not a finite number/],
    [(d) => d.pop(), /^plan has 3 devices, scenario has 4/],
  ];
  for (const [edit, re] of cases) {
    const d = base();
    edit(d);
    const msgs = checkAllocation(sc, d);
    ok(msgs.some((m) => re.test(m)), `expected ${re}, got ${JSON.stringify(msgs)}`);
  }
  // energy: a faster clock and more power shorten the round but exceed the budget on an energy-bound device
  const d = base();
  const k = d.findIndex((x, i) => x.energy_j > 0.999 * sc.devices[i].energyBudgetJ);
  ok(k >= 0, "no energy-bound device in this scenario");
  d[k].freq_hz = Math.min(sc.devices[k].fmaxHz, d[k].freq_hz * 1.2);
  d[k].power_w = sc.devices[k].pmaxW;
  ok(checkAllocation(sc, d).some((m) => new RegExp(`^device ${k}: energy .* > budget`).test(m)));
});

Deno.test("plan files: write atomically, read back, and name bad fields", async () => {
  const plan = solvedPlan();
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/plan.json`;
    await writePlan(path, plan);
    const back = await readPlan(path);
    deepStrictEqual(back, JSON.parse(JSON.stringify(plan)));
    strictEqual(back.devices.length, 4);
    deepStrictEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["plan.json"]);
    const bad = JSON.parse(JSON.stringify(plan));
    bad.devices[2].gamma = 1.2;
    await Deno.writeTextFile(path, JSON.stringify(bad));
    await rejects(
      () => readPlan(path),
      /plan\.json\.devices\[2\]\.gamma: expected a number in \[0, 0\.9\], got 1\.2/,
    );
    const bad2 = JSON.parse(JSON.stringify(plan));
    delete bad2.devices[0].freq_hz;
    ok(/plan\.devices\[0\]\.freq_hz: expected a finite number/.test(errorOf(() => parsePlan(bad2))));
    bad2.scenario.devices[1].pmax_w = 0;
    ok(
      /plan\.scenario: devices\[1\]\.pmax_w: expected a positive number/.test(errorOf(() => parsePlan(bad2))),
    );
    ok(/plan\.format/.test(errorOf(() => parsePlan({ ...plan, format: "x" }))));
    await Deno.writeTextFile(path, "{ not json");
    await rejects(() => readPlan(path), /cannot read plan JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return "(no error)";
}

Deno.test("CLI: optimize writes a plan that readPlan accepts and the checker passes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/s.json`, JSON.stringify(scenarioToJson(drawBindingScenario(3, 2))));
    const o = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "tasks/optimize.ts", "--scenario", `${dir}/s.json`, "--out", `${dir}/p.json`],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(o.stdout);
    strictEqual(o.code, 0, new TextDecoder().decode(o.stderr));
    for (
      const s of [
        "== P-SCA",
        "== B&B (global optimum) ==",
        "certificate: lower bound",
        "== comparison ==",
        "exhaustive grid",
      ]
    ) {
      ok(out.includes(s), `missing "${s}" in:\n${out}`);
    }
    const plan = await readPlan(`${dir}/p.json`);
    strictEqual(plan.method, "bnb");
    ok(plan.certificate !== null && plan.certificate.closed);
    deepStrictEqual(checkAllocation(planScenario(plan), plan.devices), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
