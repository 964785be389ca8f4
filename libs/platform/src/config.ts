// The one deployment config file: schema, defaults and validation (every problem named by its path).
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected HOST:PORT');
const ms = (def: number) => z.number().int().min(1).max(86_400_000).default(def);

const cidr = z.string().regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, 'expected an address or CIDR');

const listenerSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/i, 'letters, digits, - and _'),
  /**
   * sni: the ClientHello names the destination; http-connect and socks5: the proxy request does;
   * transparent: connections redirected by iptables REDIRECT, the SNI decides and must resolve to
   * the original destination address
   */
  mode: z.enum(['sni', 'http-connect', 'socks5', 'transparent']),
  listen: hostPort,
  /** sni mode: the port dialled on the named server */
  upstreamPort: z.number().int().min(1).max(65535).default(443),
  sniffTimeoutMs: z.number().int().min(1).max(600_000).optional(),
  /** expect a PROXY protocol header (v1, v2 or either) first, from trustedProxies only */
  proxyProtocol: z.enum(['v1', 'v2', 'any']).optional(),
  trustedProxies: z.array(cidr).default([]),
});

/** PEM file paths. With cert and key on both ends, every gRPC hop is mutually authenticated. */
const tlsFilesSchema = z.strictObject({
  ca: z.string(),
  cert: z.string().optional(),
  key: z.string().optional(),
  /** the name the server certificate is checked against, when it is not the dialled host */
  serverName: z.string().optional(),
});

const redisSchema = z.strictObject({
  /** redis://[user:password@]host:port, or rediss:// for TLS */
  url: z.string().regex(/^rediss?:\/\//, 'expected redis:// or rediss://').optional(),
  /** CA (and client certificate) for rediss:// (and for TLS to Sentinel or Cluster nodes) */
  tls: tlsFilesSchema.optional(),
  /** Redis Sentinel: the master's name and the sentinels (HOST:PORT); replaces url */
  sentinels: z.strictObject({ name: z.string().min(1), hosts: z.array(hostPort).min(1), username: z.string().optional(), password: z.string().optional(), sentinelPassword: z.string().optional() }).optional(),
  /** Redis Cluster: seed nodes (HOST:PORT); replaces url. Keys are hash-tagged where commands touch several. */
  cluster: z.strictObject({ nodes: z.array(hostPort).min(1), username: z.string().optional(), password: z.string().optional() }).optional(),
  keyPrefix: z.string().regex(/^[a-z0-9_-]+$/i).default('portcullis'),
});

const policySchema = z.strictObject({
  listen: hostPort.default('127.0.0.1:50051'),
  profile: z.string().optional(),
  adminToken: z.string().min(8, 'at least 8 characters').optional(),
  verdictTtlMs: ms(30_000),
  historyLimit: z.number().int().min(1).max(10_000).default(50),
});

const edgeSchema = z.strictObject({
  nodeId: z.string().min(1).default(hostname()),
  /** HOST:PORT, or a gRPC target naming several replicas (dns:policy:50051, ipv4:10.0.0.1:50051,10.0.0.2:50051) */
  policyService: z.union([hostPort, z.string().regex(/^(dns|ipv4|ipv6):\S+$/, 'expected HOST:PORT or a gRPC target')]).default('127.0.0.1:50051'),
  listeners: z.array(listenerSchema).default([]),
  resolve: z.record(z.string(), z.array(z.union([z.ipv4(), z.ipv6()])).min(1)).default({}),
  sniffTimeoutMs: ms(5_000),
  decideTimeoutMs: ms(250),
  connectTimeoutMs: ms(5_000),
  idleTimeoutMs: ms(300_000),
  failMode: z.enum(['closed', 'open']).default('closed'),
  /** when no verdict can be had, reuse one that went stale at most this long ago (0: never) */
  serveStaleMs: z.number().int().min(0).max(86_400_000).default(0),
  /** CIDRs the SSRF guard lets every rule reach (rules can add their own with allowPrivate). */
  allowPrivate: z.array(cidr).default([]),
  /** CONNECT/SOCKS: a ClientHello sent through the tunnel must name the requested host (domain-fronting guard) */
  requireSniMatch: z.boolean().default(true),
  dnsCacheSize: z.number().int().min(0).max(1_000_000).default(10_000),
  dnsMaxTtlMs: ms(300_000),
  maxConnections: z.number().int().min(1).max(10_000_000).default(50_000),
  maxConnectionsPerSource: z.number().int().min(1).max(10_000_000).default(5_000),
  drainTimeoutMs: ms(10_000),
  workers: z.number().int().min(1).max(256).default(1),
  /**
   * native: once a flow is decided and connected, its bytes are copied by the edge's relay thread
   * (native/relay) with no JavaScript per chunk; falls back to node, with a warning, when the addon
   * was not built. node: the JavaScript relay. CONNECT/SOCKS tunnels move to the relay thread once
   * their ClientHello check has passed.
   */
  relay: z.enum(['native', 'node']).default('native'),
  l1CacheSize: z.number().int().min(0).max(10_000_000).default(100_000),
  eventQueueSize: z.number().int().min(100).max(10_000_000).default(100_000),
  /** where flow events go when the queue is full and the stream unreachable; '' disables the spool */
  spoolDir: z.string().default('data/spool'),
  spoolMaxBytes: z.number().int().min(0).default(1024 * 1024 * 1024),
});

const auditSchema = z.strictObject({
  log: z.string().default('data/audit.log'),
  consumer: z.string().min(1).default(`${hostname()}-${process.pid}`),
  batchSize: z.number().int().min(1).max(10_000).default(500),
  claimIdleMs: ms(30_000),
  rotateBytes: z.number().int().min(1024).default(256 * 1024 * 1024),
  rotateDaily: z.boolean().default(true),
  stdout: z.boolean().default(false),
});

const streamSchema = z.strictObject({
  maxLen: z.number().int().min(1000).default(1_000_000),
});

export const configSchema = z.strictObject({
  /** mutual TLS for every gRPC server and client started from this file (edge → policy, CLI → admin) */
  grpcTls: tlsFilesSchema.optional(),
  redis: redisSchema.default({ keyPrefix: 'portcullis' }),
  policy: policySchema.prefault({}),
  edge: edgeSchema.prefault({}),
  audit: auditSchema.prefault({}),
  stream: streamSchema.prefault({}),
  /** Prometheus /metrics with /healthz and /readyz; absent: no metrics endpoint. */
  metrics: z.strictObject({ listen: hostPort.optional() }).prefault({}),
  log: z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') }).prefault({}),
});

export type PortcullisConfig = z.infer<typeof configSchema>;
export type ListenerConfig = z.infer<typeof listenerSchema>;
export type TlsFiles = z.infer<typeof tlsFilesSchema>;
export type RedisConfig = z.infer<typeof redisSchema>;

/** Is a Redis (single node, Sentinel or Cluster) configured, or is this the embedded stack? */
export function redisConfigured(config: Readonly<PortcullisConfig>): boolean {
  return Boolean(config.redis.url || config.redis.sentinels || config.redis.cluster);
}

export class ConfigError extends Error {
  readonly code = 'PORTCULLIS_ERR_CONFIG';
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid config ${source}:\n  - ${problems.join('\n  - ')}`);
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), '');
}

/** Validates an already-parsed config object; throws ConfigError listing every problem. */
export function parseConfig(raw: unknown, source = 'config'): Readonly<PortcullisConfig> {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) {
    const problems = result.error.issues.flatMap((issue) => {
      const at = formatPath(issue.path);
      if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => `${at ? `${at}.` : ''}${k}: unknown key`);
      return [`${at || '(root)'}: ${issue.message}`];
    });
    throw new ConfigError(source, problems);
  }
  const config = result.data;
  const names = new Set<string>();
  const problems: string[] = [];
  config.edge.listeners.forEach((l, i) => {
    if (names.has(l.name)) problems.push(`edge.listeners[${i}].name: duplicate listener name "${l.name}"`);
    names.add(l.name);
    if (l.proxyProtocol && l.trustedProxies.length === 0) problems.push(`edge.listeners[${i}].trustedProxies: proxyProtocol needs the CIDRs of the proxies allowed to send it`);
  });
  if (config.grpcTls && (!config.grpcTls.cert || !config.grpcTls.key)) problems.push('grpcTls: cert and key are both needed (mutual TLS)');
  if ([config.redis.url, config.redis.sentinels, config.redis.cluster].filter(Boolean).length > 1) problems.push('redis: choose one of url, sentinels and cluster');
  if (problems.length) throw new ConfigError(source, problems);
  return Object.freeze(config);
}

/** Reads a YAML (or JSON) config file. The only place that touches process.env. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Readonly<PortcullisConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (err) {
    throw new ConfigError(path, [`not valid YAML: ${(err as Error).message}`]);
  }
  // Secrets may come from the environment instead of the file (Kubernetes Secrets, Docker secrets).
  if (raw && typeof raw === 'object') {
    const r = raw as Record<string, Record<string, unknown>>;
    if (env['PORTCULLIS_REDIS_URL']) r['redis'] = { ...(r['redis'] ?? {}), url: env['PORTCULLIS_REDIS_URL'] };
    if (env['PORTCULLIS_ADMIN_TOKEN']) r['policy'] = { ...(r['policy'] ?? {}), adminToken: env['PORTCULLIS_ADMIN_TOKEN'] };
  }
  return parseConfig(raw, path);
}

export function splitHostPort(hp: string): { host: string; port: number } {
  const i = hp.lastIndexOf(':');
  const host = hp.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(hp.slice(i + 1)) };
}
