/**
 * Minimal SVG line charts (no library): axes with "nice" ticks and labels, a title, a legend, one polyline
 * path per series. Non-finite points are skipped (the line breaks there), so NaN never reaches the output.
 * @module
 */

/** One line of a chart. */
export interface ChartSeries {
  /** Legend label. */
  name: string;
  /** (x, y) points in drawing order; non-finite coordinates break the line. */
  points: readonly (readonly [number, number])[];
}

/** Arguments of {@link lineChartSvg}. */
export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly ChartSeries[];
  /** Width in pixels; default 640. */
  width?: number;
  /** Height in pixels; default 400. */
  height?: number;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/** Escapes text for use in XML content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(
    /'/g,
    "&apos;",
  );
}

/** "Nice" tick positions (steps 1, 2 or 5 × 10^k) covering [lo, hi] with about `target` ticks. */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, target);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  const out: number[] = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let i = first; i * step <= hi + step * 1e-9; i++) out.push(i * step);
  return out;
}

/** Tick label: fixed decimals matched to the tick step, exponent notation for very large or small values. */
export function formatTick(v: number, step: number): string {
  const a = Math.abs(v);
  if (a === 0 || Math.abs(v) < step * 1e-9) return "0";
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
  const digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(digits);
}

function range(values: number[]): [number, number] {
  if (values.length === 0) return [0, 1];
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi === lo) {
    const pad = lo === 0 ? 0.5 : Math.abs(lo) * 0.5;
    lo -= pad;
    hi += pad;
  }
  return [lo, hi];
}

function num(v: number): string {
  return (Math.round(v * 100) / 100).toString();
}

/**
 * Renders a line chart as a standalone SVG document.
 *
 * @example
 * ```ts
 * const svg = lineChartSvg({ title: "dev accuracy", xLabel: "round", yLabel: "accuracy",
 *   series: [{ name: "γ=0.3", points: [[0, 0.61], [1, 0.7]] }] });
 * await writeTextAtomic("runs/x/dev_accuracy.svg", svg);
 * ```
 */
export function lineChartSvg(o: LineChartOptions): string {
  const W = o.width ?? 640, H = o.height ?? 400;
  if (!(W >= 100 && H >= 100)) throw new Error(`lineChartSvg: width/height must be ≥ 100, got ${W}×${H}`);
  const left = 70, right = 20, top = 40, bottom = 55;
  const legendW = 150;
  const pw = W - left - right - legendW, ph = H - top - bottom;
  const finite = o.series.map((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const [x0, x1] = range(finite.flat().map((p) => p[0]));
  const [y0, y1] = range(finite.flat().map((p) => p[1]));
  const xTicks = niceTicks(x0, x1), yTicks = niceTicks(y0, y1);
  const xs = (x: number) => left + (x - x0) / (x1 - x0) * pw;
  const ys = (y: number) => top + ph - (y - y0) / (y1 - y0) * ph;
  const xStep = xTicks.length > 1 ? xTicks[1] - xTicks[0] : Math.abs(x1 - x0) || 1;
  const yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : Math.abs(y1 - y0) || 1;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
      `font-family="sans-serif" font-size="12">`,
  );
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  parts.push(
    `<text x="${num(left + pw / 2)}" y="22" text-anchor="middle" font-size="15">${escapeXml(o.title)}</text>`,
  );
  // Grid, ticks and tick labels.
  for (const t of xTicks) {
    const x = num(xs(t));
    parts.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${top + ph}" stroke="#e5e5e5"/>`);
    parts.push(`<line x1="${x}" y1="${top + ph}" x2="${x}" y2="${top + ph + 5}" stroke="black"/>`);
    parts.push(`<text x="${x}" y="${top + ph + 18}" text-anchor="middle">${formatTick(t, xStep)}</text>`);
  }
  for (const t of yTicks) {
    const y = num(ys(t));
    parts.push(`<line x1="${left}" y1="${y}" x2="${left + pw}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(`<line x1="${left - 5}" y1="${y}" x2="${left}" y2="${y}" stroke="black"/>`);
    parts.push(
      `<text x="${left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${
        formatTick(t, yStep)
      }</text>`,
    );
  }
  // Axes and axis labels.
  parts.push(
    `<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`,
  );
  parts.push(
    `<text x="${num(left + pw / 2)}" y="${H - 12}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`,
  );
  parts.push(
    `<text x="16" y="${num(top + ph / 2)}" text-anchor="middle" transform="rotate(-90 16 ${
      num(top + ph / 2)
    })">${escapeXml(o.yLabel)}</text>`,
  );
  // Series and legend.
  let legendRow = 0;
  o.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    // Line pieces between non-finite points; a lone point becomes a zero-length stroke (a round dot).
    const pieces: string[][] = [[]];
    for (const [x, y] of s.points) {
      if (!(Number.isFinite(x) && Number.isFinite(y))) {
        if (pieces[pieces.length - 1].length) pieces.push([]);
        continue;
      }
      const piece = pieces[pieces.length - 1];
      piece.push(`${piece.length ? "L" : "M"}${num(xs(x))} ${num(ys(y))}`);
    }
    const d = pieces.filter((p) => p.length).map((p) => p.join(" ") + (p.length === 1 ? " h0" : "")).join(
      " ",
    );
    if (finite[i].length > 0) {
      parts.push(
        `<path d="${d}" fill="none" stroke="${color}" stroke-width="2" stroke-linecap="round" ` +
          `stroke-linejoin="round"/>`,
      );
    }
    const ly = top + 10 + legendRow * 18;
    const lx = left + pw + 15;
    parts.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 20}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    parts.push(
      `<text x="${lx + 26}" y="${ly}" dominant-baseline="middle">${escapeXml(s.name)}${
        finite[i].length === 0 ? " (no data)" : ""
      }</text>`,
    );
    legendRow++;
  });
  if (finite.every((f) => f.length === 0)) {
    parts.push(
      `<text x="${num(left + pw / 2)}" y="${
        num(top + ph / 2)
      }" text-anchor="middle" fill="#888">no data</text>`,
    );
  }
  parts.push(`</svg>`);
  return parts.join("\n") + "\n";
}
