/** System model: g_k against a closed form, the inner energy minimisation against brute force, table bounds. */
import { ok, strictEqual } from "node:assert/strict";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import { drawScenarioJson, parseScenario, type Scenario } from "../opt/scenario.ts";
import {
  BandwidthTable,
  feasibleAt,
  leastEnergySplit,
  minBandwidth,
  payloadBits,
  rateBps,
  roundCycles,
} from "../opt/system_model.ts";

/** Lambert W on the lower branch, W_{-1}(z) for z in (-1/e, 0), by Halley iteration. */
function lambertWm1(z: number): number {
  let w = Math.log(-z) - Math.log(-Math.log(-z));
  for (let i = 0; i < 50; i++) {
    const e = Math.exp(w), f = w * e - z;
    const step = f / (e * (w + 1) - (w + 2) * f / (2 * w + 2));
    w -= step;
    if (Math.abs(step) < 1e-15 * Math.abs(w)) break;
  }
  return w;
}

function defaultLike(k = 6, seed = 0): Scenario {
  return parseScenario(drawScenarioJson(k, seed, 1.2e6 * k / 10));
}

Deno.test("g_k equals the closed form when only the deadline binds (fixed clock f_max, no energy limit)", () => {
  const j = drawScenarioJson(5, 11, 5e6);
  const devs = j.devices as Record<string, number>[];
  for (const d of devs) d.energy_budget_j = 1e12; // energy never binds
  j.server_power_w = 0.2; // = p_max, so download and upload rates are equal
  const sc = parseScenario(j);
  let checked = 0;
  for (let k = 0; k < sc.devices.length; k++) {
    for (const gamma of [0, 0.37, 0.9]) {
      const d = sc.devices[k];
      // 2Q / (B log2(1 + c/B)) = T - W/f_max, c = p h / N0: with x = c/B, ln(1+x)/x = a, a = r ln2 / c
      const r = 2 * payloadBits(sc, gamma) / (sc.deadlineS - roundCycles(sc, k) / d.fmaxHz);
      const c = d.pmaxW * d.gain / sc.noiseWPerHz;
      const a = r * Math.LN2 / c;
      ok(a < 1);
      const y = -lambertWm1(-a * Math.exp(-a)) / a;
      const want = c / (y - 1);
      const got = minBandwidth(sc, k, gamma);
      if (want > sc.bandwidthHz) {
        strictEqual(got, Infinity);
        continue;
      }
      ok(Math.abs(got - want) <= 1e-8 * want, `device ${k} gamma ${gamma}: g ${got} vs closed form ${want}`);
      // and the rate identity holds at the answer
      ok(Math.abs(rateBps(got, d.pmaxW, d.gain, sc.noiseWPerHz) / r - 1) < 1e-7);
      checked++;
    }
  }
  ok(checked >= 10, `only ${checked} closed-form cases were in range`);
});

Deno.test("least-energy split equals a brute-force search over the upload time", () => {
  const sc = defaultLike();
  const r = new KeyedRandom([5, Purpose.test]);
  let checked = 0;
  for (let trial = 0; trial < 40; trial++) {
    const k = r.int(sc.devices.length), gamma = 0.9 * r.uniform(), b = 3e4 + 4e5 * r.uniform();
    const s = leastEnergySplit(sc, k, gamma, b);
    if (!s.ok) continue;
    const d = sc.devices[k], q = payloadBits(sc, gamma), w = roundCycles(sc, k);
    const tRest = sc.deadlineS - q / rateBps(b, sc.serverPowerW, d.gain, sc.noiseWPerHz);
    const lo = q / rateBps(b, d.pmaxW, d.gain, sc.noiseWPerHz), hi = tRest - w / d.fmaxHz;
    let best = Infinity;
    const n = 20000;
    for (let i = 0; i <= n; i++) {
      const tu = lo + (hi - lo) * i / n;
      const p = Math.min(d.pmaxW, sc.noiseWPerHz * b / d.gain * (Math.pow(2, q / (tu * b)) - 1));
      const f = Math.min(d.fmaxHz, w / (tRest - tu));
      best = Math.min(best, d.kappa * w * f * f + p * tu + d.fixedEnergyJ);
    }
    const e = s.alloc.energyJ;
    ok(e <= best * (1 + 1e-12), `device ${k}: split energy ${e} above brute force ${best}`);
    ok(best - e <= 1e-6 * best, `device ${k}: split energy ${e} far below brute force ${best}`);
    ok(
      s.alloc.latencyS <= sc.deadlineS * (1 + 1e-12) && s.alloc.powerW <= d.pmaxW &&
        s.alloc.freqHz <= d.fmaxHz,
    );
    checked++;
  }
  ok(checked >= 20);
});

Deno.test("g_k is minimal, decreasing in gamma, and convex on the default-like scenario", () => {
  const sc = defaultLike();
  for (let k = 0; k < sc.devices.length; k++) {
    const g = minBandwidth(sc, k, 0.4);
    ok(Number.isFinite(g));
    ok(feasibleAt(sc, k, 0.4, g));
    ok(!feasibleAt(sc, k, 0.4, g * (1 - 1e-7)), `device ${k}: g is not minimal`);
    const t = BandwidthTable.build(sc, k, 91);
    for (let i = t.firstFinite + 1; i < t.g.length; i++) {
      ok(t.g[i] < t.g[i - 1], `device ${k}: not decreasing at ${i}`);
    }
    ok(t.convex, `device ${k}: g_k not convex on this scenario`);
  }
  // a device that cannot be served even alone is Infinity
  const j = drawScenarioJson(2, 0, 1e6);
  (j.devices as Record<string, number>[])[1].energy_budget_j = 10;
  strictEqual(minBandwidth(parseScenario(j), 1, 0.9), Infinity);
});

Deno.test("table bounds: lowerAt ≤ g ≤ interp, and every cut lies below g", () => {
  const sc = defaultLike(4, 2);
  const r = new KeyedRandom([9, Purpose.test]);
  for (let k = 0; k < sc.devices.length; k++) {
    const t = BandwidthTable.build(sc, k, 181);
    ok(t.convex);
    for (let i = 0; i < 25; i++) {
      const gamma = sc.gammaMax * r.uniform();
      const exact = minBandwidth(sc, k, gamma) / sc.bandwidthHz;
      if (!Number.isFinite(exact)) continue;
      ok(t.lowerAt(gamma) <= exact, `lowerAt above g at ${gamma}`);
      ok(t.interp(gamma) >= exact - 1e-10, `interp below g at ${gamma}: ${t.interp(gamma)} < ${exact}`);
      for (const at of [0, gamma, sc.gammaMax * r.uniform(), sc.gammaMax]) {
        const c = t.cut(at)!;
        ok(c.intercept + c.slope * gamma <= exact, `cut at ${at} above g at ${gamma}`);
      }
      // the cut anchored at the exact value at a box's top corner u is valid on the whole box [lo, u]
      const u = Math.min(sc.gammaMax - t.step, gamma + 0.2 * r.uniform()), lo = gamma * r.uniform();
      const gu = minBandwidth(sc, k, u) / sc.bandwidthHz;
      const c = t.cutAt(u, gu, lo)!;
      for (const x of [lo, gamma, u, 0.5 * (lo + u)]) {
        const ex = minBandwidth(sc, k, x) / sc.bandwidthHz;
        ok(c.intercept + c.slope * x <= ex, `cutAt(${u}) above g at ${x}`);
      }
      ok(gu - (c.intercept + c.slope * u) < 1e-7, "cutAt is not tight at u");
    }
  }
});
