// The shared verdict cache: entries live under the policy version, so a new version makes
// every old entry unreachable at once (they then expire by TTL).
import type { RedisClient as Redis } from '@portcullis/platform';

export type CacheAnswer = (value: string | undefined) => void;

export interface VerdictCache {
  /** The cached value, or undefined on a miss, an error, or no answer within the cache's budget. */
  get(version: number, key: string): Promise<string | undefined>;
  /** `get` without a promise: `done` is called once, maybe synchronously (the decision stream's path). */
  lookup(version: number, key: string, done: CacheAnswer): void;
  set(version: number, key: string, value: string, ttlMs: number): void;
}

export function verdictKey(prefix: string, version: number, key: string): string {
  return `${prefix}:verdict:${version}:${key}`;
}

export interface RedisVerdictCacheOptions {
  prefix: string;
  /** How long a lookup may take before the caller is told "miss" and just evaluates (Redis slow or stalled). */
  budgetMs: number;
  onError?: (err: unknown) => void;
}

/**
 * Lookups made in one turn of the event loop go to Redis as one MGET, and writes as one
 * pipeline. A DecideStream delivers hundreds of requests per socket read under load; one command
 * (and one write syscall) per decision was the largest cost of a replica (a fifth of its CPU in
 * `writeUtf8String`). On a Cluster keys of one batch may live on different nodes, so each key
 * keeps its own command there.
 */
export class RedisVerdictCache implements VerdictCache {
  private readonly cluster: boolean;
  private readonly onError: (err: unknown) => void;
  private getKeys: string[] = [];
  private getWaiters: CacheAnswer[] = [];
  /** key, value, ttl, key, value, ttl ... */
  private writes: (string | number)[] = [];
  private scheduled = false;

  constructor(
    private readonly redis: Redis,
    private readonly opts: RedisVerdictCacheOptions,
  ) {
    this.cluster = redis.isCluster;
    this.onError = opts.onError ?? (() => undefined);
  }

  get(version: number, key: string): Promise<string | undefined> {
    return new Promise((resolve) => this.lookup(version, key, resolve));
  }

  lookup(version: number, key: string, done: CacheAnswer): void {
    this.getKeys.push(verdictKey(this.opts.prefix, version, key));
    this.getWaiters.push(done);
    this.schedule();
  }

  set(version: number, key: string, value: string, ttlMs: number): void {
    this.writes.push(verdictKey(this.opts.prefix, version, key), value, ttlMs);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // after this turn's I/O callbacks: every request read in this turn is in the batch
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.getKeys.length > 0) {
      const keys = this.getKeys;
      const waiters = this.getWaiters;
      this.getKeys = [];
      this.getWaiters = [];
      this.mget(keys, waiters);
    }
    if (this.writes.length > 0) {
      const writes = this.writes;
      this.writes = [];
      this.write(writes);
    }
  };

  private mget(keys: string[], waiters: CacheAnswer[]): void {
    let settled = false;
    const settle = (values: (string | null | undefined)[] | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (let i = 0; i < waiters.length; i++) (waiters[i] as CacheAnswer)(values?.[i] ?? undefined);
    };
    // On a busy loop the timer can fire while the reply already sits unread in the socket (timers
    // run before I/O in a turn): give up only after one more turn's I/O, so that load alone does
    // not turn hits into misses (each one an evaluation and a SET more).
    const timer = setTimeout(() => setImmediate(settle, undefined), this.opts.budgetMs);
    const reply: Promise<(string | null | undefined)[]> = this.cluster
      ? Promise.all(keys.map((k) => this.redis.get(k).catch((err: unknown) => (this.onError(err), undefined))))
      : this.redis.mget(keys);
    reply.then(settle, (err: unknown) => {
      this.onError(err);
      settle(undefined);
    });
  }

  private write(w: (string | number)[]): void {
    if (this.cluster || w.length === 3) {
      for (let i = 0; i < w.length; i += 3) this.redis.set(w[i] as string, w[i + 1] as string, 'PX', w[i + 2] as number).catch(this.onError);
      return;
    }
    const p = this.redis.pipeline();
    for (let i = 0; i < w.length; i += 3) p.set(w[i] as string, w[i + 1] as string, 'PX', w[i + 2] as number);
    p.exec().then((results) => {
      const failed = results?.find(([err]) => err);
      if (failed) this.onError(failed[0]);
    }, this.onError);
  }
}

export class MemoryVerdictCache implements VerdictCache {
  private readonly map = new Map<string, { value: string; expires: number }>();
  constructor(private readonly maxEntries = 100_000) {}

  async get(version: number, key: string): Promise<string | undefined> {
    return this.read(version, key);
  }

  lookup(version: number, key: string, done: CacheAnswer): void {
    done(this.read(version, key));
  }

  private read(version: number, key: string): string | undefined {
    const k = `${version}:${key}`;
    const e = this.map.get(k);
    if (!e) return undefined;
    if (e.expires < Date.now()) {
      this.map.delete(k);
      return undefined;
    }
    return e.value;
  }

  set(version: number, key: string, value: string, ttlMs: number): void {
    if (this.map.size >= this.maxEntries) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
    this.map.set(`${version}:${key}`, { value, expires: Date.now() + ttlMs });
  }
}
