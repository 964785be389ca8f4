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

/**
 * Appends ARGV[2..] to the stream KEYS[1] in order, each trimmed to about ARGV[1] entries, and
 * answers how many it added (a number, not the IDs: nothing big comes back). One key, so it runs
 * on a Cluster too.
 */
const APPEND_SCRIPT = `local n = 0
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'data', ARGV[i])
  n = n + 1
end
return n`;

/**
 * The most entries one script call carries. Redis runs a script to the end before anything else:
 * 500 XADDs of ~400-byte events hold it for ~0.75 ms (measured). The publisher's batches are no bigger.
 */
export const MAX_APPEND_ENTRIES = 500;

type AppendCommand = (stream: string, maxLen: number, ...data: string[]) => Promise<number>;

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
  private readonly append: AppendCommand;

  constructor(
    private readonly redis: Redis,
    private readonly opts: { maxLen: number; stream?: string; group?: string; reader?: Redis },
  ) {
    // ioredis sends EVALSHA, and EVAL when the script is not loaded (a new connection, a restarted Redis).
    redis.defineCommand('portcullisFlowAppend', { numberOfKeys: 1, lua: APPEND_SCRIPT });
    const defined = redis as unknown as { portcullisFlowAppend: AppendCommand };
    this.append = defined.portcullisFlowAppend.bind(redis);
  }

  private get stream(): string {
    return this.opts.stream ?? FLOW_STREAM;
  }
  private get group(): string {
    return this.opts.group ?? AUDIT_GROUP;
  }

  /**
   * One command per batch (of up to MAX_APPEND_ENTRIES): a pipeline of one XADD per event cost
   * the edge a command object, a promise and argument conversion each, ~12% of its CPU at 1,600
   * connections/s. A batch whose reply is lost (Redis or the connection died after the script
   * ran) is re-sent by the publisher and lands twice: the audit consumer drops the repeat.
   */
  async add(data: string[]): Promise<void> {
    if (data.length === 0) return;
    const calls: Promise<number>[] = [];
    // Sent back to back on one connection (one key, so one node): they run in this order.
    for (let i = 0; i < data.length; i += MAX_APPEND_ENTRIES) calls.push(this.append(this.stream, this.opts.maxLen, ...data.slice(i, i + MAX_APPEND_ENTRIES)));
    let added = 0;
    for (const n of await Promise.all(calls)) added += n;
    if (added !== data.length) throw new Error(`flow stream took ${added} of ${data.length} entries`);
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
