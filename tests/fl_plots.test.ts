import { ok, rejects, strictEqual } from "node:assert/strict";
import { writeTextAtomic } from "../fl/atomic_write.ts";
import { escapeXml, formatTick, lineChartSvg, niceTicks } from "../fl/plots.ts";

function count(s: string, sub: string): number {
  return s.split(sub).length - 1;
}

/** Basic XML well-formedness: every opened element is closed in order (no attributes containing '>'). */
function assertBalancedXml(svg: string): void {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    const [, close, name, self] = m;
    if (self) continue;
    if (close) strictEqual(stack.pop(), name, `closing </${name}> does not match`);
    else stack.push(name);
  }
  strictEqual(stack.length, 0, `unclosed elements: ${stack.join(",")}`);
  ok(!/&(?!amp;|lt;|gt;|quot;|apos;)/.test(svg), "unescaped &");
}

Deno.test("lineChartSvg: structure, one path per non-empty series, no NaN text", () => {
  const svg = lineChartSvg({
    title: "dev accuracy <CoLA & MRPC>",
    xLabel: "round",
    yLabel: "accuracy",
    series: [
      { name: "γ=0", points: [[0, 0.5], [1, 0.62], [2, NaN], [3, 0.7], [4, 0.71]] },
      { name: "γ=0.3", points: [[0, 0.52], [1, 0.6], [2, 0.66]] },
      { name: "empty", points: [] },
      { name: "non-finite", points: [[NaN, 1], [2, Infinity]] },
    ],
  });
  ok(svg.startsWith("<svg"));
  ok(svg.trimEnd().endsWith("</svg>"));
  strictEqual(count(svg, "<path"), 2);
  ok(!svg.includes("NaN") && !svg.includes("Infinity"));
  ok(svg.includes("dev accuracy &lt;CoLA &amp; MRPC&gt;"));
  for (const label of ["round", "accuracy", "γ=0.3", "empty (no data)"]) ok(svg.includes(label), label);
  // The NaN point breaks the first line into two pieces.
  const d = svg.match(/<path d="([^"]*)"/)![1];
  strictEqual(count(d, "M"), 2);
  strictEqual(count(d, "L"), 2);
  // Ticks: 0..4 on x.
  for (const t of ["0", "1", "2", "3", "4"]) ok(svg.includes(`>${t}</text>`), `x tick ${t}`);
  assertBalancedXml(svg);
});

Deno.test("lineChartSvg: empty and degenerate inputs stay valid", () => {
  for (
    const series of [[], [{ name: "x", points: [] }], [{
      name: "one",
      points: [[3, 3]] as [number, number][],
    }]]
  ) {
    const svg = lineChartSvg({ title: "t", xLabel: "x", yLabel: "y", series });
    ok(svg.startsWith("<svg"));
    ok(!svg.includes("NaN") && !svg.includes("Infinity"), svg);
    assertBalancedXml(svg);
    strictEqual(count(svg, "<path"), series.length === 1 && series[0].points.length ? 1 : 0);
    if (series.length === 1 && series[0].points.length) ok(svg.includes(' h0"'), "lone point drawn as a dot");
  }
});

Deno.test("niceTicks and formatTick", () => {
  const t = niceTicks(0.03, 0.97);
  strictEqual(t.length, 4);
  ok(Math.abs(t[0] - 0.2) < 1e-12 && Math.abs(t[3] - 0.8) < 1e-12, t.join(","));
  const big = niceTicks(0, 3.2e6);
  ok(big.every((v, i) => i === 0 || Math.abs(v - big[i - 1] - 1e6) < 1e-3), big.join(","));
  strictEqual(formatTick(0.2, 0.2), "0.2");
  strictEqual(formatTick(3000000, 1e6), "3.00e+6");
  strictEqual(formatTick(40, 10), "40");
  strictEqual(escapeXml(`a<b>&"'`), "a&lt;b&gt;&amp;&quot;&apos;");
});

Deno.test("writeTextAtomic: writes, replaces, leaves no temp files, clear error on bad path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = `${dir}/chart.svg`;
    await writeTextAtomic(p, "first");
    await writeTextAtomic(p, "second");
    strictEqual(await Deno.readTextFile(p), "second");
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    strictEqual(names.join(","), "chart.svg");
    await rejects(() => writeTextAtomic(`${dir}/missing/x.svg`, "x"), /writing .*missing\/x.svg failed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
