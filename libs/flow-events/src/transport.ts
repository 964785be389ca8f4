// Where flow events travel: a Redis Stream with a consumer group, or an in-memory stand-in
// with the same semantics for the embedded single-process stack.
import type { RedisClient as Redis } from '@portcullis/platform';

export const FLOW_STREAM = 'portcullis:flows';
export const AUDIT_GROUP = 'audit';

export interface StreamEntry {
  id: string;
  data: string;
}

export interface FlowTransport {
  readonly kind: 'redis' | 'memory';
  /** Appends entries in order; resolves when all were accepted. */
  add(data: string[]): Promise<void>;
  ensureGroup(): Promise<void>;
  /** New entries for this consumer (blocking up to blockMs when none). */
  read(consumer: string, count: number, blockMs: number): Promise<StreamEntry[]>;
  /** Entries delivered to this consumer but not acknowledged (after a restart). */
  readOwnPending(consumer: string, count: number): Promise<StreamEntry[]>;
  /** Takes over entries another consumer left pending for longer than minIdleMs. */
  claimIdle(consumer: string, minIdleMs: number, count: number): Promise<StreamEntry[]>;
  ack(ids: string[]): Promise<void>;
  /** The consumer group's backlog: entries not yet delivered (lag) and delivered but unacknowledged (pending). */
  groupInfo(): Promise<{ lag: number; pending: number }>;
  close(): Promise<void>;
}

function entries(reply: unknown): StreamEntry[] {
  // XREADGROUP: [[stream, [[id, [field, value, ...]], ...]]]; XAUTOCLAIM: [cursor, [[id, fields]], deleted]
  const out: StreamEntry[] = [];
  if (!Array.isArray(reply)) return out;
  for (const item of reply as [string, string[] | null][]) {
    const [id, fields] = item;
    if (!fields) continue; // deleted entry
    const i = fields.indexOf('data');
    out.push({ id, data: i >= 0 ? (fields[i + 1] ?? '') : '' });
  }
  return out;
}

export class RedisFlowTransport implements FlowTransport {
  readonly kind = 'redis' as const;
  constructor(
    private readonly redis: Redis,
    private readonly opts: { maxLen: number; stream?: string; group?: string; reader?: Redis },
  ) {}

  private get stream(): string {
    return this.opts.stream ?? FLOW_STREAM;
  }
  private get group(): string {
    return this.opts.group ?? AUDIT_GROUP;
  }

  async add(data: string[]): Promise<void> {
    if (data.length === 0) return;
    const p = this.redis.pipeline();
    for (const d of data) p.xadd(this.stream, 'MAXLEN', '~', this.opts.maxLen, '*', 'data', d);
    const res = await p.exec();
    const failed = res?.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
  }

  async ensureGroup(): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.stream, this.group, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
    }
  }

  async read(consumer: string, count: number, blockMs: number): Promise<StreamEntry[]> {
    // Blocking reads use their own connection so they never delay acks on the shared one.
    const r = this.opts.reader ?? this.redis;
    const reply = (await r.xreadgroup('GROUP', this.group, consumer, 'COUNT', count, 'BLOCK', blockMs, 'STREAMS', this.stream, '>')) as [string, unknown][] | null;
    return reply?.[0] ? entries(reply[0][1]) : [];
  }

  async readOwnPending(consumer: string, count: number): Promise<StreamEntry[]> {
    const reply = (await this.redis.xreadgroup('GROUP', this.group, consumer, 'COUNT', count, 'STREAMS', this.stream, '0')) as [string, unknown][] | null;
    return reply?.[0] ? entries(reply[0][1]) : [];
  }

  async claimIdle(consumer: string, minIdleMs: number, count: number): Promise<StreamEntry[]> {
    const reply = (await this.redis.xautoclaim(this.stream, this.group, consumer, minIdleMs, '0-0', 'COUNT', count)) as [string, unknown, unknown];
    return entries(reply[1]);
  }

  async ack(ids: string[]): Promise<void> {
    if (ids.length) await this.redis.xack(this.stream, this.group, ...ids);
  }

  async groupInfo(): Promise<{ lag: number; pending: number }> {
    const groups = (await this.redis.xinfo('GROUPS', this.stream)) as unknown[][];
    for (const g of groups) {
      const f = new Map<string, unknown>();
      for (let i = 0; i + 1 < g.length; i += 2) f.set(String(g[i]), g[i + 1]);
      if (f.get('name') === this.group) return { lag: Number(f.get('lag') ?? 0), pending: Number(f.get('pending') ?? 0) };
    }
    return { lag: 0, pending: 0 };
  }

  async close(): Promise<void> {
    this.opts.reader?.disconnect();
  }
}

interface Pending {
  consumer: string;
  deliveredAt: number;
}

/** In-process stand-in for the embedded stack: one stream, one group, same delivery rules. */
export class MemoryFlowTransport implements FlowTransport {
  readonly kind = 'memory' as const;
  private log: StreamEntry[] = [];
  private nextIndex = 0; // first undelivered entry
  private seq = 0;
  private pending = new Map<string, Pending>();
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly maxLen = 1_000_000) {}

  async add(data: string[]): Promise<void> {
    for (const d of data) this.log.push({ id: `${Date.now()}-${this.seq++}`, data: d });
    if (this.log.length > this.maxLen) {
      const drop = this.log.length - this.maxLen;
      this.log.splice(0, drop);
      this.nextIndex = Math.max(0, this.nextIndex - drop);
    }
    for (const w of this.waiters.splice(0)) w();
  }

  async ensureGroup(): Promise<void> {}

  async read(consumer: string, count: number, blockMs: number): Promise<StreamEntry[]> {
    if (this.nextIndex >= this.log.length && blockMs > 0 && !this.closed) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, blockMs);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    const out = this.log.slice(this.nextIndex, this.nextIndex + count);
    this.nextIndex += out.length;
    const now = Date.now();
    for (const e of out) this.pending.set(e.id, { consumer, deliveredAt: now });
    return out;
  }

  async readOwnPending(consumer: string, count: number): Promise<StreamEntry[]> {
    return this.log.filter((e) => this.pending.get(e.id)?.consumer === consumer).slice(0, count);
  }

  async claimIdle(consumer: string, minIdleMs: number, count: number): Promise<StreamEntry[]> {
    const now = Date.now();
    const out = this.log.filter((e) => {
      const p = this.pending.get(e.id);
      return p && now - p.deliveredAt >= minIdleMs;
    }).slice(0, count);
    for (const e of out) this.pending.set(e.id, { consumer, deliveredAt: now });
    return out;
  }

  async ack(ids: string[]): Promise<void> {
    for (const id of ids) this.pending.delete(id);
  }

  async groupInfo(): Promise<{ lag: number; pending: number }> {
    return { lag: this.log.length - this.nextIndex, pending: this.pending.size };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
  }
}
