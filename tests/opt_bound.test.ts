/** The generalisation bound G(γ): formula, derivatives by finite differences, interior optimum by default. */
import { ok, strictEqual } from "node:assert/strict";
import {
  boundObjective,
  dH,
  dPhi,
  dPhiGap,
  dSigma,
  hMinimiser,
  hOf,
  phi,
  phiGap,
  sigma,
} from "../opt/bound.ts";
import { DEFAULT_BOUND } from "../opt/scenario.ts";
import { BandwidthTable } from "../opt/system_model.ts";

const b = DEFAULT_BOUND;

Deno.test("boundObjective matches the written formula", () => {
  const samples = [855, 1200, 640], gamma = [0.1, 0.5, 0.85];
  const n = 855 + 1200 + 640, w = samples.map((x) => x / n);
  const sbar = w.reduce((a, wk, k) => a + wk * (2 * gamma[k] - gamma[k] ** 2), 0);
  const gap = Math.sqrt((1 + 24 / (0.05 + 2 * sbar)) / (2 * n * 0.05));
  const emp = 0.1 + 0.15 * sbar + 0.01 * w.reduce((a, wk, k) => a + wk * wk * gamma[k] / (1 - gamma[k]), 0);
  const v = boundObjective(b, samples, gamma);
  ok(Math.abs(v.gap - gap) < 1e-15 && Math.abs(v.emp - emp) < 1e-15 && Math.abs(v.G - gap - emp) < 1e-15);
  strictEqual(v.sbar, sbar);
  let msg = "";
  try {
    boundObjective(b, samples, [0.1]);
  } catch (e) {
    msg = (e as Error).message;
  }
  ok(msg.includes("gamma: expected 3 values"), msg);
});

Deno.test("derivatives agree with central finite differences", () => {
  const n = 9000, e = 1e-6;
  const fd = (f: (x: number) => number, x: number) => (f(x + e) - f(x - e)) / (2 * e);
  for (const x of [0.05, 0.3, 0.62, 0.88]) {
    ok(Math.abs(dSigma(x) - fd(sigma, x)) < 1e-7);
    ok(Math.abs(dPhi(x) / fd(phi, x) - 1) < 1e-7);
    ok(Math.abs(dPhiGap(b, n, x) / fd((s) => phiGap(b, n, s), x) - 1) < 1e-6);
    ok(Math.abs(dH(b, n, x) - fd((s) => hOf(b, n, s), x)) < 1e-7);
  }
  // the linear extension below 0 is continuous with matching slope
  ok(Math.abs(phiGap(b, n, -1e-9) - phiGap(b, n, 0)) < 1e-7);
  ok(Math.abs(fd((s) => phiGap(b, n, s), -0.01) / dPhiGap(b, n, 0) - 1) < 1e-9);
  ok(Math.abs(dPhiGap(b, n, -0.3) - dPhiGap(b, n, 0)) === 0);
  const s = hMinimiser(b, n);
  ok(s > 0 && s < 1 && Math.abs(dH(b, n, s)) < 1e-9);
});

Deno.test("default constants give an interior optimum when resources are plentiful", () => {
  const samples = [700, 900, 1100, 1300, 800, 1000, 1200, 600, 1400, 950];
  let best = 0, bestG = Infinity;
  for (let i = 0; i <= 900; i++) {
    const g = i / 1000;
    const v = boundObjective(b, samples, samples.map(() => g)).G;
    if (v < bestG) {
      bestG = v;
      best = g;
    }
  }
  ok(best > 0.2 && best < 0.6, `uniform optimum at ${best}`);
  ok(bestG < boundObjective(b, samples, samples.map(() => 0)).G - 0.05);
  ok(bestG < boundObjective(b, samples, samples.map(() => 0.9)).G - 0.01);
});

Deno.test("a non-convex bandwidth table gives no cuts (only the constant bound stays)", () => {
  const x = Float64Array.from({ length: 11 }, (_, i) => 0.09 * i);
  const convexG = Float64Array.from(x, (t) => 0.3 * (1 - t) * (1 - t) + 0.1);
  const bumpy = convexG.slice();
  bumpy[5] += 0.05;
  const a = new BandwidthTable(x, convexG), c = new BandwidthTable(x, bumpy);
  ok(a.convex && a.cut(0.4) !== undefined);
  ok(!c.convex && c.cut(0.4) === undefined);
  ok(c.lowerAt(0.41) <= bumpy[5]);
});
