// Redis connections: one place that knows how to build an ioredis client from the config.
import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { readFileSync } from 'node:fs';
import type { TlsFiles } from './config';

export type { Redis };

/** ioredis options for rediss:// with our own CA (and client certificate). */
export function redisTlsOptions(url: string, tls?: TlsFiles): RedisOptions {
  if (!url.startsWith('rediss://') || !tls) return {};
  return { tls: { ca: readFileSync(tls.ca), ...(tls.cert ? { cert: readFileSync(tls.cert) } : {}), ...(tls.key ? { key: readFileSync(tls.key) } : {}), ...(tls.serverName ? { servername: tls.serverName } : {}) } };
}

export function connectRedis(url: string, opts: RedisOptions = {}, tls?: TlsFiles): Redis {
  return new Redis(url, {
    ...redisTlsOptions(url, tls),
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    lazyConnect: false,
    ...opts,
  });
}

/** Resolves when the client answers PING, rejects after timeoutMs. */
export async function waitForRedis(redis: Redis, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      await redis.ping();
      return;
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
