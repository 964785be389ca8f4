export { startRedis } from './redis-server';
export type { TestRedis } from './redis-server';
export { freePort, waitFor } from './ports';
export { makeCerts } from './certs';
export type { TestCerts } from './certs';
export { startTlsUpstream } from './upstream';
export type { TlsUpstream } from './upstream';
export { startRedisCluster, startRedisSentinel } from './redis-topologies';
