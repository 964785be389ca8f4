// The shared verdict cache: entries live under the policy version, so a new version makes
// every old entry unreachable at once (they then expire by TTL).
import type { RedisClient as Redis } from '@portcullis/platform';

export interface VerdictCache {
  get(version: number, key: string): Promise<string | undefined>;
  set(version: number, key: string, value: string, ttlMs: number): void;
}

export function verdictKey(prefix: string, version: number, key: string): string {
  return `${prefix}:verdict:${version}:${key}`;
}

export class RedisVerdictCache implements VerdictCache {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  async get(version: number, key: string): Promise<string | undefined> {
    return (await this.redis.get(verdictKey(this.prefix, version, key))) ?? undefined;
  }

  set(version: number, key: string, value: string, ttlMs: number): void {
    this.redis.set(verdictKey(this.prefix, version, key), value, 'PX', ttlMs).catch(this.onError);
  }
}

export class MemoryVerdictCache implements VerdictCache {
  private readonly map = new Map<string, { value: string; expires: number }>();
  constructor(private readonly maxEntries = 100_000) {}

  async get(version: number, key: string): Promise<string | undefined> {
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
