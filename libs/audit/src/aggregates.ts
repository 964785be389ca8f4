// Operator aggregates: attempts and denials per name, per rule and per source, in one-minute
// buckets so any sliding window (5m, 1h, 24h) is a sum of buckets. Kept in Redis (or memory for
// the embedded stack); counted only for events newly written (a redelivery is not counted twice).
import type { RedisClient as Redis } from '@portcullis/platform';
import type { FlowEvent } from '@portcullis/flow-events';

export type Dimension = 'name' | 'rule' | 'source';
export const DIMENSIONS: Dimension[] = ['name', 'rule', 'source'];
const BUCKET_MS = 60_000;
const KEEP_S = 25 * 3600;

export interface TopEntry {
  key: string;
  attempts: number;
  denials: number;
}

export interface Aggregates {
  record(events: FlowEvent[]): Promise<void>;
  top(windowMs: number, limit: number): Promise<Record<Dimension, TopEntry[]>>;
}

function keysOf(e: FlowEvent): Record<Dimension, string> {
  return { name: e.connectHost || e.sni || '(no name)', rule: e.ruleId || `(${e.reason})`, source: e.src.replace(/:\d+$/, '') };
}

function bucket(t: number): number {
  return Math.floor(t / BUCKET_MS);
}

function rank(totals: Map<string, TopEntry>, limit: number): TopEntry[] {
  return [...totals.values()].sort((a, b) => b.attempts - a.attempts || b.denials - a.denials || a.key.localeCompare(b.key)).slice(0, limit);
}

export class RedisAggregates implements Aggregates {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'portcullis',
  ) {}

  private key(b: number, kind: 'attempts' | 'denials', d: Dimension): string {
    // one hash tag for all: a pipeline in Redis Cluster must stay in one slot
    return `${this.prefix}:{agg}:${b}:${kind}:${d}`;
  }

  async record(events: FlowEvent[]): Promise<void> {
    const starts = events.filter((e) => e.event === 'flow.start');
    if (starts.length === 0) return;
    const p = this.redis.pipeline();
    const touched = new Set<string>();
    for (const e of starts) {
      const b = bucket(Date.parse(e.startTime) || Date.now());
      const k = keysOf(e);
      for (const d of DIMENSIONS) {
        const a = this.key(b, 'attempts', d);
        p.hincrby(a, k[d], 1);
        touched.add(a);
        if (e.verdict === 'deny') {
          const dn = this.key(b, 'denials', d);
          p.hincrby(dn, k[d], 1);
          touched.add(dn);
        }
      }
    }
    for (const t of touched) p.expire(t, KEEP_S);
    await p.exec();
  }

  async top(windowMs: number, limit: number): Promise<Record<Dimension, TopEntry[]>> {
    const now = bucket(Date.now());
    const buckets = Array.from({ length: Math.max(1, Math.ceil(windowMs / BUCKET_MS)) }, (_, i) => now - i);
    const p = this.redis.pipeline();
    for (const d of DIMENSIONS) for (const b of buckets) for (const kind of ['attempts', 'denials'] as const) p.hgetall(this.key(b, kind, d));
    const replies = (await p.exec()) ?? [];
    const out = {} as Record<Dimension, TopEntry[]>;
    let i = 0;
    for (const d of DIMENSIONS) {
      const totals = new Map<string, TopEntry>();
      for (let j = 0; j < buckets.length; j++) {
        for (const kind of ['attempts', 'denials'] as const) {
          const h = (replies[i++]?.[1] ?? {}) as Record<string, string>;
          for (const [k, v] of Object.entries(h)) {
            const e = totals.get(k) ?? { key: k, attempts: 0, denials: 0 };
            e[kind] += Number(v);
            totals.set(k, e);
          }
        }
      }
      out[d] = rank(totals, limit);
    }
    return out;
  }
}

export class MemoryAggregates implements Aggregates {
  private readonly buckets = new Map<number, Map<string, TopEntry>>(); // bucket → "dim|key" → counts

  async record(events: FlowEvent[]): Promise<void> {
    for (const e of events) {
      if (e.event !== 'flow.start') continue;
      const b = bucket(Date.parse(e.startTime) || Date.now());
      const m = this.buckets.get(b) ?? new Map<string, TopEntry>();
      this.buckets.set(b, m);
      const k = keysOf(e);
      for (const d of DIMENSIONS) {
        const id = `${d}|${k[d]}`;
        const entry = m.get(id) ?? { key: k[d], attempts: 0, denials: 0 };
        entry.attempts++;
        if (e.verdict === 'deny') entry.denials++;
        m.set(id, entry);
      }
    }
    const oldest = bucket(Date.now()) - KEEP_S / 60;
    for (const b of this.buckets.keys()) if (b < oldest) this.buckets.delete(b);
  }

  async top(windowMs: number, limit: number): Promise<Record<Dimension, TopEntry[]>> {
    const from = bucket(Date.now()) - Math.max(1, Math.ceil(windowMs / BUCKET_MS)) + 1;
    const out = {} as Record<Dimension, TopEntry[]>;
    for (const d of DIMENSIONS) {
      const totals = new Map<string, TopEntry>();
      for (const [b, m] of this.buckets) {
        if (b < from) continue;
        for (const [id, e] of m) {
          if (!id.startsWith(`${d}|`)) continue;
          const t = totals.get(e.key) ?? { key: e.key, attempts: 0, denials: 0 };
          t.attempts += e.attempts;
          t.denials += e.denials;
          totals.set(e.key, t);
        }
      }
      out[d] = rank(totals, limit);
    }
    return out;
  }
}
