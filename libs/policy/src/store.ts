// The policy store: active profile, monotonically increasing version, bounded history.
// Redis-backed for fleets (atomic apply via one Lua script, pub/sub on change) or in memory
// for the embedded single-process stack.
import { EventEmitter } from 'node:events';
import type { RedisClient as Redis } from '@portcullis/platform';

export interface StoredPolicy {
  version: number;
  content: string;
  profileName: string;
  appliedBy: string;
  appliedAt: string;
  comment: string;
  sha256: string;
  ruleCount: number;
}

export type NewPolicy = Omit<StoredPolicy, 'version'>;

export interface PolicyStore {
  readonly kind: 'redis' | 'memory';
  current(): Promise<StoredPolicy | undefined>;
  get(version: number): Promise<StoredPolicy | undefined>;
  /** Publishes a new version atomically; with ifEmpty, only when the store holds none (returns undefined otherwise). */
  apply(doc: NewPolicy, opts?: { ifEmpty?: boolean }): Promise<StoredPolicy | undefined>;
  history(limit: number): Promise<StoredPolicy[]>;
  /** Calls back with each new version number; returns an unsubscribe function. */
  subscribe(onVersion: (version: number) => void): Promise<() => void>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

// Hash tag {policy} keeps every key the script touches in one Cluster slot.
export function policyKeys(prefix: string): { version: string; docs: string; history: string; channel: string } {
  return {
    version: `${prefix}:{policy}:version`,
    docs: `${prefix}:{policy}:docs`,
    history: `${prefix}:{policy}:history`,
    channel: `${prefix}:policy:changed`,
  };
}

const APPLY_SCRIPT = `
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], v, ARGV[1])
redis.call('LPUSH', KEYS[3], v)
local limit = tonumber(ARGV[3])
local old = redis.call('LRANGE', KEYS[3], limit, -1)
for _, o in ipairs(old) do redis.call('HDEL', KEYS[2], o) end
redis.call('LTRIM', KEYS[3], 0, limit - 1)
redis.call('PUBLISH', ARGV[4], v)
return v
`;

function decode(version: number, json: string | null | undefined): StoredPolicy | undefined {
  if (!json) return undefined;
  return { ...(JSON.parse(json) as NewPolicy), version };
}

export class RedisPolicyStore implements PolicyStore {
  readonly kind = 'redis' as const;
  private readonly keys;
  private subscriber: Redis | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly opts: { prefix: string; historyLimit: number },
  ) {
    this.keys = policyKeys(opts.prefix);
  }

  async current(): Promise<StoredPolicy | undefined> {
    const v = await this.redis.get(this.keys.version);
    return v ? this.get(Number(v)) : undefined;
  }

  async get(version: number): Promise<StoredPolicy | undefined> {
    return decode(version, await this.redis.hget(this.keys.docs, String(version)));
  }

  async apply(doc: NewPolicy, opts: { ifEmpty?: boolean } = {}): Promise<StoredPolicy | undefined> {
    const v = (await this.redis.eval(APPLY_SCRIPT, 3, this.keys.version, this.keys.docs, this.keys.history, JSON.stringify(doc), opts.ifEmpty ? '1' : '0', String(this.opts.historyLimit), this.keys.channel)) as number;
    return v === 0 ? undefined : { ...doc, version: Number(v) };
  }

  async history(limit: number): Promise<StoredPolicy[]> {
    const versions = await this.redis.lrange(this.keys.history, 0, limit - 1);
    if (versions.length === 0) return [];
    const docs = await this.redis.hmget(this.keys.docs, ...versions);
    return versions.flatMap((v, i) => decode(Number(v), docs[i]) ?? []);
  }

  async subscribe(onVersion: (version: number) => void): Promise<() => void> {
    // a second connection in subscriber mode (both Redis and Cluster can duplicate themselves)
    const sub: Redis = (this.redis as { duplicate(): Redis }).duplicate();
    this.subscriber = sub;
    sub.on('message', (_channel: string, message: string) => onVersion(Number(message)));
    // After a reconnect we may have missed messages: re-read the counter.
    sub.on('ready', () => {
      void this.redis.get(this.keys.version).then((v) => v && onVersion(Number(v)), () => undefined);
    });
    sub.on('error', () => undefined);
    await sub.subscribe(this.keys.channel);
    return () => {
      sub.disconnect();
      if (this.subscriber === sub) this.subscriber = undefined;
    };
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.subscriber?.disconnect();
  }
}

export class MemoryPolicyStore implements PolicyStore {
  readonly kind = 'memory' as const;
  private versions: StoredPolicy[] = [];
  private counter = 0;
  private readonly events = new EventEmitter();

  constructor(private readonly historyLimit = 50) {}

  async current(): Promise<StoredPolicy | undefined> {
    return this.versions[0];
  }
  async get(version: number): Promise<StoredPolicy | undefined> {
    return this.versions.find((p) => p.version === version);
  }
  async apply(doc: NewPolicy, opts: { ifEmpty?: boolean } = {}): Promise<StoredPolicy | undefined> {
    if (opts.ifEmpty && this.counter > 0) return undefined;
    const stored = { ...doc, version: ++this.counter };
    this.versions.unshift(stored);
    this.versions.length = Math.min(this.versions.length, this.historyLimit);
    this.events.emit('version', stored.version);
    return stored;
  }
  async history(limit: number): Promise<StoredPolicy[]> {
    return this.versions.slice(0, limit);
  }
  async subscribe(onVersion: (version: number) => void): Promise<() => void> {
    this.events.on('version', onVersion);
    return () => this.events.off('version', onVersion);
  }
  async ping(): Promise<boolean> {
    return true;
  }
  async close(): Promise<void> {}
}
