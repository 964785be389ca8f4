// Small statistics and the interleaved-rounds driver every process-level scenario uses.
import type { BenchRow } from '../types';

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Nearest-rank percentile of an ascending-sorted array (p in 0..100). */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export function round(x: number, digits = 0): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Significant-ish rounding for report values: 3 significant digits, at most `maxDigits` decimals. */
export function sig(x: number, maxDigits = 3): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const digits = Math.max(0, Math.min(maxDigits, 2 - Math.floor(Math.log10(Math.abs(x)))));
  return round(x, digits);
}

export interface Series {
  values: number[];
  median: number;
  min: number;
  max: number;
}

export function series(values: number[]): Series {
  return { values, median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/**
 * The order of round `r` for n candidates: a Williams design (a Latin square balanced for the
 * candidate before: over n rounds, n even, or 2n rounds, n odd, each candidate runs first once and
 * follows every other one equally often). With A B C D / D C B A, B always ran after A or C.
 */
export function roundOrder(n: number, r: number): number[] {
  const base = [0];
  for (let i = 1, lo = 1, hi = n - 1; base.length < n; i++) base.push(i % 2 ? lo++ : hi--);
  const order = base.map((x) => (x + r) % n);
  return n % 2 === 1 && Math.floor(r / n) % 2 === 1 ? order.reverse() : order;
}

/**
 * Runs `measure(candidate, round)` for every candidate, interleaved for `rounds` rounds, so that
 * slow drifts of a shared machine hit every candidate alike, each round in its own order
 * (roundOrder) so that the after-effects of the candidate before (sockets in TIME_WAIT, caches)
 * fall on every candidate alike.
 */
export async function interleave<C extends string, R>(candidates: readonly C[], rounds: number, measure: (candidate: C, round: number) => Promise<R>, log = true): Promise<Record<C, R[]>> {
  const out = Object.fromEntries(candidates.map((c) => [c, [] as R[]])) as Record<C, R[]>;
  for (let r = 0; r < rounds; r++) {
    for (const c of roundOrder(candidates.length, r).map((i) => candidates[i] as C)) {
      const t = Date.now();
      const res = await measure(c, r);
      out[c].push(res);
      if (log) console.log(`    round ${r + 1}/${rounds} ${c}: ${summarize(res)} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
    }
  }
  return out;
}

function summarize(x: unknown): string {
  if (typeof x === 'number') return String(sig(x));
  if (x && typeof x === 'object') {
    return Object.entries(x as Record<string, unknown>)
      .filter(([, v]) => typeof v === 'number')
      .slice(0, 6)
      .map(([k, v]) => `${k}=${sig(v as number)}`)
      .join(' ');
  }
  return String(x);
}

/** A row carrying the median and the min–max of a series, plus a ratio to a baseline median. */
export function row(metric: string, s: Series, unit: string, extra: Partial<BenchRow> = {}, digits = 3): BenchRow {
  return { metric, value: sig(s.median, digits), unit, min: sig(s.min, digits), max: sig(s.max, digits), ...extra };
}

/** Target check helper: `value <= limit` or `value >= limit`. */
export function meets(value: number, op: '<=' | '>=', limit: number): boolean {
  if (!Number.isFinite(value)) return false;
  return op === '<=' ? value <= limit : value >= limit;
}
