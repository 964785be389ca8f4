// Redis connections: one place that knows how to build an ioredis client from the config.
import { Cluster, Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { readFileSync } from 'node:fs';
import { splitHostPort } from './config';
import type { RedisConfig, TlsFiles } from './config';

/** A single node (also behind Sentinel) or a Cluster: the commands we use exist on both. */
export type RedisClient = Redis | Cluster;
export type { Redis };

/** ioredis options for rediss:// with our own CA (and client certificate). */
export function redisTlsOptions(url: string, tls?: TlsFiles): RedisOptions {
  if (!url.startsWith('rediss://') || !tls) return {};
  return { tls: { ca: readFileSync(tls.ca), ...(tls.cert ? { cert: readFileSync(tls.cert) } : {}), ...(tls.key ? { key: readFileSync(tls.key) } : {}), ...(tls.serverName ? { servername: tls.serverName } : {}) } };
}

const DEFAULTS: RedisOptions = {
  maxRetriesPerRequest: 2,
  enableOfflineQueue: true,
  connectTimeout: 2_000,
  retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
  lazyConnect: false,
};

function tlsOf(tls?: TlsFiles): RedisOptions['tls'] {
  if (!tls) return undefined;
  return { ca: readFileSync(tls.ca), ...(tls.cert ? { cert: readFileSync(tls.cert) } : {}), ...(tls.key ? { key: readFileSync(tls.key) } : {}), ...(tls.serverName ? { servername: tls.serverName } : {}) };
}

/** One client for the configured topology: a URL, a Sentinel-managed master, or a Cluster. */
export function connectRedis(redis: Readonly<RedisConfig>, opts: RedisOptions = {}): RedisClient {
  if (redis.sentinels) {
    const s = redis.sentinels;
    const tls = tlsOf(redis.tls);
    return new Redis({
      ...DEFAULTS,
      sentinels: s.hosts.map((h) => splitHostPort(h)),
      name: s.name,
      ...(s.username ? { username: s.username } : {}),
      ...(s.password ? { password: s.password } : {}),
      ...(s.sentinelPassword ? { sentinelPassword: s.sentinelPassword } : {}),
      ...(tls ? { tls, enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
      ...opts,
    });
  }
  if (redis.cluster) {
    const c = redis.cluster;
    const tls = tlsOf(redis.tls);
    return new Cluster(c.nodes.map((n) => splitHostPort(n)), {
      redisOptions: { ...DEFAULTS, ...(c.username ? { username: c.username } : {}), ...(c.password ? { password: c.password } : {}), ...(tls ? { tls } : {}), ...opts },
      enableOfflineQueue: true,
      clusterRetryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2_000),
    });
  }
  if (!redis.url) throw new Error('no Redis configured (redis.url, redis.sentinels or redis.cluster)');
  return new Redis(redis.url, { ...redisTlsOptions(redis.url, redis.tls), ...DEFAULTS, ...opts });
}

/** Resolves when the client answers PING, rejects after timeoutMs. */
export async function waitForRedis(redis: RedisClient, timeoutMs = 5_000): Promise<void> {
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
