// Turning interleaved per-round results into report rows: medians with min–max, ratios to the
// baseline of the same run, and target checks on paired (same-round) ratios.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { BenchRow } from '../types';
import { meets, median, series, sig } from './stats';

/** Values of `key` across rounds. */
export function pick<R>(rs: readonly R[], key: (r: R) => number): number[] {
  return rs.map(key);
}

/** Per-round ratios a[i] / b[i] (pairs from the same round, so drift cancels). */
export function pairedRatios(a: readonly number[], b: readonly number[]): number[] {
  return a.map((x, i) => x / (b[i] as number)).filter((x) => Number.isFinite(x));
}

export interface ValueRowOpts {
  /** baseline series for the ratio column (median over median) */
  baseline?: number[];
  digits?: number;
}

export function valueRow(metric: string, values: number[], unit: string, o: ValueRowOpts = {}): BenchRow {
  const s = series(values);
  const r: BenchRow = { metric, value: sig(s.median, o.digits ?? 3), unit, min: sig(s.min, o.digits ?? 3), max: sig(s.max, o.digits ?? 3) };
  if (o.baseline) r.ratio = s.median / median(o.baseline);
  return r;
}

/** A ratio row with a target, e.g. edge / nginx-stream connections/s ">= 1.0". */
export function targetRatioRow(metric: string, ratios: number[], op: '<=' | '>=', limit: number, unit = '×'): BenchRow {
  const s = series(ratios);
  return { metric, value: sig(s.median), unit, min: sig(s.min), max: sig(s.max), target: `${op} ${limit}`, met: meets(s.median, op, limit) };
}

export function targetValueRow(metric: string, values: number[], unit: string, op: '<=' | '>=', limit: number, extra: Partial<BenchRow> = {}): BenchRow {
  const s = series(values);
  return { metric, value: sig(s.median), unit, min: sig(s.min), max: sig(s.max), target: `${op} ${limit} ${unit}`, met: meets(s.median, op, limit), ...extra };
}

export function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return '?';
  }
}

export function machine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model.trim() ?? 'cpu'}, node ${process.version}, load average ${loadAverage()}`;
}
