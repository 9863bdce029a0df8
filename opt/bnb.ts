/**
 * Branch-and-bound for min G(γ) s.t. Σ ĝ_k(γ_k) ≤ 1 with one coupled LP relaxation per node (glpk.js).
 * Node = box [ℓ, u], pruned when its cheapest corner is unaffordable (Σ exact ĝ_k(u_k) > 1). LP variables
 * γ_k, σ_k, v_k, β_k, S, z; minimise e0 + z + a2 Σ w_k² v_k with z above tangents of h(S), S = Σ w_k σ_k,
 * σ_k between the secant and tangents of σ, v_k above tangents of φ, β_k ≥ exact ĝ_k(u_k) and, when every
 * table is convex, β_k above cuts of ĝ_k (table secants lowered by the most a convex function can dip below
 * them, and a line through the exact value at u_k), Σ β_k ≤ 1. Cuts at the LP point are added where it
 * violates them and the LP re-solved (≤ `lpsPerNode`). Every cut is valid for the exact g_k, so the lower
 * bound is certified for the exact problem; candidate points (upper bounds) are checked with `Problem.gHat`
 * (the table interpolation, conservative for convex g_k). Best-first; stops at UB − LB ≤ ε_abs + ε_rel·|UB|.
 *
 * @example
 * ```ts
 * const prob = buildProblem(sc);
 * const r = await solveBnb(prob, { incumbent: pscaResult.gamma });
 * console.log(r.objective, r.lowerBound, r.nodes, r.closed);
 * ```
 * @module
 */
import GLPKFactory from "glpk.js";
import { dH, dPhi, dSigma, hMinimiser, hOf, phi, sigma } from "./bound.ts";
import { type Problem, pushToAffordable } from "./problem.ts";

type Glpk = Awaited<ReturnType<typeof GLPKFactory>>;
let glpkPromise: Promise<Glpk> | undefined;

/** The shared glpk.js instance (created on first use). */
export function glpk(): Promise<Glpk> {
  glpkPromise ??= GLPKFactory();
  return glpkPromise;
}

/** Options of the B&B search. */
export interface BnbOptions {
  /** Absolute gap tolerance (1e-6). */
  epsAbs?: number;
  /** Relative gap tolerance (1e-4). */
  epsRel?: number;
  /** A feasible starting point (e.g. the P-SCA answer) for the initial upper bound. */
  incumbent?: number[];
  /** Root box (defaults to [0, γ_max]^K). */
  lower?: number[];
  upper?: number[];
  /** Ignore the bandwidth constraint (used by the equal-split baseline, whose box already encodes it). */
  noBandwidth?: boolean;
  /** Maximum LP solves per node (4). */
  lpsPerNode?: number;
  maxNodes?: number;
  timeLimitS?: number;
  /** Called with every bounded node (tests use it to check LB ≤ optimum). */
  onNode?: (node: { lower: number[]; upper: number[]; lb: number }) => void;
}

/** Outcome of B&B. */
export interface BnbResult {
  gamma: number[];
  objective: number;
  /** Certified lower bound on the optimum. */
  lowerBound: number;
  /** objective − lowerBound. */
  gap: number;
  /** True when the gap tolerance was met (false when a limit stopped the search). */
  closed: boolean;
  nodes: number;
  lps: number;
  timeS: number;
  /** Part of timeS spent inside glpk.js (building the LP objects and the rest of the search is the remainder). */
  lpTimeS: number;
  /** Whether the ĝ cuts were used (all tables convex). */
  bandwidthCuts: boolean;
}

interface Node {
  lo: number[];
  hi: number[];
  lb: number;
  /** LP point. */
  gamma: number[];
  sig: number[];
  v: number[];
  beta: number[];
  /** Price of bandwidth in the node's LP. */
  dual: number;
}

/** A node's LP bound and the LP point (γ_k, σ_k, v_k, β_k); lb is Infinity for an unaffordable box. */
export interface BoxBound {
  lb: number;
  gamma: number[];
  sig: number[];
  v: number[];
  beta: number[];
  /** LPs solved. */
  lps: number;
  /** Seconds spent inside glpk.js for them. */
  lpSeconds?: number;
  /** |dual| of the bandwidth row (the price of bandwidth at the LP point). */
  dual?: number;
}

const TANGENT_S = [0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.95];

/** Lower bound of G on the box [lo, hi] by the coupled LP (Infinity when the box is unaffordable). */
export async function boxLowerBound(
  prob: Problem,
  lo: number[],
  hi: number[],
  opts: { noBandwidth?: boolean; lpsPerNode?: number } = {},
): Promise<BoxBound> {
  const G = await glpk();
  const K = lo.length, b = prob.bound, w = prob.w, n = prob.n;
  const useBw = !opts.noBandwidth;
  const fail: BoxBound = { lb: Infinity, gamma: [], sig: [], v: [], beta: [], lps: 0 };
  // exact ĝ at the cheapest corner: prune when it is unaffordable; it also anchors the β bounds
  const gHi = useBw ? hi.map((u, k) => prob.exactG(k, u)) : [];
  if (useBw && gHi.reduce((a, x) => a + x, 0) > 1) return fail;
  const sPts = [...TANGENT_S, hMinimiser(b, n)];
  const sigPts: number[][] = lo.map((l, k) => [l, 0.5 * (l + hi[k]), hi[k]]);
  const phiPts: number[][] = lo.map((l, k) => [l, 0.5 * (l + hi[k]), hi[k]]);
  const bwPts: number[][] = lo.map((l, k) => [l, 0.5 * (l + hi[k]), hi[k]]);
  const convex = prob.tables.every((t) => t.convex);
  let last = -Infinity, lps = 0, lpSeconds = 0;
  let out = fail;
  for (let iter = 0; iter < (opts.lpsPerNode ?? 4); iter++) {
    const rows: {
      name: string;
      vars: { name: string; coef: number }[];
      bnds: { type: number; ub: number; lb: number };
    }[] = [];
    let r = 0;
    const row = (vars: [string, number][], type: number, lb: number, ub: number) =>
      rows.push({
        name: `r${r++}`,
        vars: vars.map(([name, coef]) => ({ name, coef })),
        bnds: { type, lb, ub },
      });
    for (const s of sPts) {
      const d = dH(b, n, s);
      row([["z", 1], ["S", -d]], G.GLP_LO, hOf(b, n, s) - d * s, 0);
    }
    row([["S", 1], ...w.map((wk, k): [string, number] => [`s${k}`, -wk])], G.GLP_FX, 0, 0);
    const bounds = [
      { name: "z", type: G.GLP_FR, lb: 0, ub: 0 },
      { name: "S", type: G.GLP_FR, lb: 0, ub: 0 },
    ];
    const bwRow: [string, number][] = [];
    for (let k = 0; k < K; k++) {
      const l = lo[k], u = hi[k];
      bounds.push({ name: `g${k}`, type: u > l ? G.GLP_DB : G.GLP_FX, lb: l, ub: u });
      bounds.push({ name: `s${k}`, type: G.GLP_FR, lb: 0, ub: 0 });
      bounds.push({ name: `v${k}`, type: G.GLP_FR, lb: 0, ub: 0 });
      // σ_k ≥ secant on [l, u]
      const sec = u > l ? (sigma(u) - sigma(l)) / (u - l) : 0;
      row([[`s${k}`, 1], [`g${k}`, -sec]], G.GLP_LO, sigma(l) - sec * l, 0);
      for (const t of sigPts[k]) {
        const ds = dSigma(t);
        row([[`s${k}`, 1], [`g${k}`, -ds]], G.GLP_UP, 0, sigma(t) - ds * t);
      }
      for (const t of phiPts[k]) {
        const dp = dPhi(t);
        row([[`v${k}`, 1], [`g${k}`, -dp]], G.GLP_LO, phi(t) - dp * t, 0);
      }
      if (useBw) {
        const tab = prob.tables[k];
        bounds.push({ name: `b${k}`, type: G.GLP_LO, lb: Math.max(0, gHi[k] - tab.tol), ub: 0 });
        if (convex) {
          const cuts = bwPts[k].map((t) => tab.cut(t));
          if (u > l) cuts.push(tab.cutAt(u, gHi[k], l));
          for (const c of cuts) if (c) row([[`b${k}`, 1], [`g${k}`, -c.slope]], G.GLP_LO, c.intercept, 0);
        }
        bwRow.push([`b${k}`, 1]);
      }
    }
    const bwName = `r${r}`;
    if (useBw) row(bwRow, G.GLP_UP, 0, 1);
    const objVars = [{ name: "z", coef: 1 }, ...w.map((wk, k) => ({ name: `v${k}`, coef: b.a2 * wk * wk }))];
    const lp = {
      name: "node",
      objective: { direction: G.GLP_MIN, name: "obj", vars: objVars },
      subjectTo: rows,
      bounds,
    };
    const ts = performance.now();
    // no presolver: it is not faster on these LPs and answers "undefined" on infeasible ones
    const res = G.solve(lp, { msglev: G.GLP_MSG_OFF, presol: false });
    lpSeconds += (performance.now() - ts) / 1000;
    lps++;
    const st = res.result.status;
    if (st === G.GLP_NOFEAS || st === G.GLP_INFEAS) return { ...fail, lps, lpSeconds };
    if (st !== G.GLP_OPT) throw new Error(`B&B: GLPK returned status ${st} on a node LP`);
    const x = res.result.vars;
    const lb = b.e0 + res.result.z;
    const gamma = lo.map((_, k) => Math.min(hi[k], Math.max(lo[k], x[`g${k}`])));
    out = {
      lb: Math.max(lb, last),
      gamma,
      sig: lo.map((_, k) => x[`s${k}`]),
      v: lo.map((_, k) => x[`v${k}`]),
      beta: lo.map((_, k) => (useBw ? x[`b${k}`] : 0)),
      lps,
      lpSeconds,
      dual: useBw ? Math.abs(res.result.dual?.[bwName] ?? 0) : 0,
    };
    if (lb - last < 1e-8 && iter > 0) break;
    last = Math.max(last, lb);
    // cut only the parts of the relaxation that the LP point violates (keeps the LPs small)
    let added = 0;
    if (x["z"] < hOf(b, n, x["S"]) - 1e-12) added += sPts.push(x["S"]);
    for (let k = 0; k < K; k++) {
      const g = gamma[k];
      if (out.sig[k] > sigma(g) + 1e-12) added += sigPts[k].push(g);
      if (out.v[k] < phi(g) - 1e-12) added += phiPts[k].push(g);
      if (useBw && convex && out.beta[k] < prob.gHat(k, g) - 1e-12) added += bwPts[k].push(g);
    }
    if (added === 0) break;
  }
  return out;
}

/** Binary min-heap on node.lb. */
class NodeHeap {
  #a: Node[] = [];
  get size(): number {
    return this.#a.length;
  }
  push(x: Node): void {
    const a = this.#a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p].lb <= a[i].lb) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }
  pop(): Node | undefined {
    const a = this.#a;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && a[l].lb < a[m].lb) m = l;
        if (r < a.length && a[r].lb < a[m].lb) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

/** Global minimisation by branch-and-bound; throws if no affordable point exists in the root box. */
export async function solveBnb(prob: Problem, opts: BnbOptions = {}): Promise<BnbResult> {
  await glpk(); // loading the LP solver (about a second, once per process) is not search time
  const t0 = performance.now();
  const K = prob.w.length, b = prob.bound;
  const epsAbs = opts.epsAbs ?? 1e-6, epsRel = opts.epsRel ?? 1e-4;
  const maxNodes = opts.maxNodes ?? 200000, timeLimit = opts.timeLimitS ?? 120;
  const rootLo = opts.lower ?? new Array(K).fill(0);
  const rootHi = opts.upper ?? new Array(K).fill(prob.gammaMax);
  const useBw = !opts.noBandwidth;
  const affordable = (g: number[]) => !useBw || prob.usage(g) <= 1;
  let best: number[] | undefined, ub = Infinity;
  const offer = (g: number[] | undefined) => {
    if (!g || !affordable(g)) return;
    const val = prob.objective(g).G;
    if (val < ub) {
      ub = val;
      best = g.slice();
    }
  };
  if (opts.incumbent) offer(opts.incumbent.map((g, k) => Math.min(rootHi[k], Math.max(rootLo[k], g))));
  offer(rootHi.slice());
  let lps = 0, nodes = 0, prunedLb = Infinity, lpTime = 0;
  const tol = () => epsAbs + epsRel * Math.abs(ub);
  const bound = async (lo: number[], hi: number[]): Promise<Node | undefined> => {
    const r = await boxLowerBound(prob, lo, hi, {
      noBandwidth: opts.noBandwidth,
      lpsPerNode: opts.lpsPerNode,
    });
    lps += r.lps;
    lpTime += r.lpSeconds ?? 0;
    nodes++;
    if (!Number.isFinite(r.lb)) return undefined;
    opts.onNode?.({ lower: lo, upper: hi, lb: r.lb });
    const node: Node = {
      lo,
      hi,
      lb: r.lb,
      gamma: r.gamma,
      sig: r.sig,
      v: r.v,
      beta: r.beta,
      dual: r.dual ?? 0,
    };
    offer(useBw ? pushToAffordable(prob, r.gamma, hi) : r.gamma);
    return node;
  };
  const heap = new NodeHeap();
  const root = await bound(rootLo, rootHi);
  if (root) heap.push(root);
  let certified: number | undefined;
  let closed = false;
  while (heap.size > 0) {
    const node = heap.pop()!;
    if (ub - node.lb <= tol()) {
      certified = Math.min(node.lb, prunedLb);
      closed = true;
      break;
    }
    if (nodes >= maxNodes || (performance.now() - t0) / 1000 > timeLimit) {
      certified = Math.min(node.lb, prunedLb);
      break;
    }
    // branching device: largest relaxation error at the LP point
    let kBest = -1, score = -1;
    const dual = node.dual;
    for (let k = 0; k < K; k++) {
      const width = node.hi[k] - node.lo[k];
      if (width < 1e-7) continue;
      const g = node.gamma[k], wk = prob.w[k];
      let s = b.a1 * b.lambda * wk * Math.abs(sigma(g) - node.sig[k]) + b.a2 * wk * wk * (phi(g) - node.v[k]);
      if (useBw) s += dual * Math.min(1, Math.max(0, prob.gHat(k, g) - node.beta[k]));
      s += 1e-12 * width;
      if (s > score) {
        score = s;
        kBest = k;
      }
    }
    if (kBest < 0) {
      // box collapsed to a point: its LB is exact up to LP tolerance
      prunedLb = Math.min(prunedLb, node.lb);
      continue;
    }
    const l = node.lo[kBest], u = node.hi[kBest], wd = u - l;
    const cut = Math.min(u - 0.1 * wd, Math.max(l + 0.1 * wd, node.gamma[kBest]));
    for (const [a, c] of [[l, cut], [cut, u]]) {
      const lo = node.lo.slice(), hi = node.hi.slice();
      lo[kBest] = a;
      hi[kBest] = c;
      const child = await bound(lo, hi);
      if (!child) continue;
      child.lb = Math.max(child.lb, node.lb);
      if (ub - child.lb <= tol()) prunedLb = Math.min(prunedLb, child.lb);
      else heap.push(child);
    }
  }
  if (!best) throw new Error("B&B: no affordable point in the root box");
  if (certified === undefined) {
    certified = Math.min(ub, prunedLb);
    closed = true;
  }
  return {
    gamma: best,
    objective: ub,
    lowerBound: certified,
    gap: ub - certified,
    closed,
    nodes,
    lps,
    timeS: (performance.now() - t0) / 1000,
    lpTimeS: lpTime,
    bandwidthCuts: useBw && prob.tables.every((t) => t.convex),
  };
}
