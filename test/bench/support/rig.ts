// The process-level bench rig, all on loopback in one temp dir:
//   upstream      nginx HTTPS server (self-signed cert made with openssl now), /small and /big (64 MiB)
//   nginx-stream  nginx stream + ssl_preread routing by SNI (bench.test) to the upstream
//   edge          redis-server + policy-service + edge-proxy, the built apps as separate processes
// Every process runs in its own process group and is killed when the rig stops (or the bench dies).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { groupPids, launch, noFileLimits, registerTempDir, removeTempDir, sleep, waitForLog, waitForPort } from './procs';
import type { Managed } from './procs';
import { BenchSkip, ensureTools, nginxInfo, which } from './tools';
import type { NginxInfo } from './tools';

export const ROOT = resolve(__dirname, '../../..');
export const SNI = 'bench.test';
export const SMALL_BYTES = 256;
export const BIG_BYTES = 64 * 1024 * 1024;

/** edge-b: a second edge on the same build and policy service with another log level (BENCH_EDGE_B_LOG_LEVEL), an in-run A/B */
/** node-bare: the floor of a Node relay (support/bare-relay.mjs, BENCH_BARE=1) */
/** nginx-audit: nginx-stream doing what the edge must: half-close passed on, a log line per connection (BENCH_NGINX_AUDIT=1) */
export type Candidate = 'direct' | 'edge' | 'edge-b' | 'node-bare' | 'nginx-stream' | 'nginx-audit';

/** Scales every scenario: seconds per measured round (default 8), rounds (default 3, at least 3). */
export const settings = {
  seconds: Math.max(1, Number(process.env['BENCH_SECONDS'] ?? 8)),
  rounds: Math.max(3, Number(process.env['BENCH_ROUNDS'] ?? 3)),
  profile: process.env['BENCH_PROFILE'] === '1',
  keep: process.env['BENCH_KEEP'] === '1',
  edgeLogLevel: process.env['BENCH_EDGE_LOG_LEVEL'] ?? 'info',
  upstreamWorkers: Math.max(1, Number(process.env['BENCH_UPSTREAM_WORKERS'] ?? 1)),
  /** adds candidate edge-b: the same edge with this log level (e.g. warn), to measure logging in the same run */
  edgeBLogLevel: process.env['BENCH_EDGE_B_LOG_LEVEL'] ?? '',
  /** adds candidate edge-b run from another build's dist/ (e.g. a worktree of an older commit): an in-run A/B of two builds */
  edgeBDist: process.env['BENCH_EDGE_B_DIST'] ?? '',
  /** adds candidate edge-b: the same edge with this edge.relay (node: the JavaScript relay), to measure the data plane in the same run */
  edgeBRelay: process.env['BENCH_EDGE_B_RELAY'] ?? '',
  /** adds candidate edge-b: the same edge with its Prometheus endpoint on (metrics.listen), to measure the metrics' per-flow cost in the same run */
  edgeBMetrics: process.env['BENCH_EDGE_B_METRICS'] === '1',
  /**
   * with an edge-b: start edge-b before the edge. In A/A runs (2026-11-28) the edge process started
   * first tended to take 6-16% more CPU per connection than an identical one started second, not
   * steadily: an A/B is run once each way and read as the geometric mean (test/bench/README.md).
   */
  edgeBFirst: process.env['BENCH_EDGE_B_FIRST'] === '1',
  /** adds candidate node-bare: a minimal Node relay with no policy, logs or events (the floor for Node) */
  bare: process.env['BENCH_BARE'] === '1',
  /** adds candidate nginx-audit: nginx-stream with proxy_half_close on and a buffered access log line per connection */
  nginxAudit: process.env['BENCH_NGINX_AUDIT'] === '1',
  /** edge.workers for the edges (0: a single process) */
  edgeWorkers: Number(process.env['BENCH_EDGE_WORKERS'] ?? 0),
  /** extra node flags for the edge process, e.g. --heapsnapshot-signal=SIGUSR2 */
  edgeNodeArgs: (process.env['BENCH_EDGE_NODE_ARGS'] ?? '').split(' ').filter(Boolean),
  /** adds candidate edge-b: the same edge with these node flags instead (e.g. --max-semi-space-size=16), measured in the same rounds */
  edgeBNodeArgs: (process.env['BENCH_EDGE_B_NODE_ARGS'] ?? '').split(' ').filter(Boolean),
  /** adds candidate edge-b: the same edge with these extra environment variables (`K=V K2=V2`, e.g. PORTCULLIS_RELAY_THREAD=1), measured in the same rounds */
  edgeBEnv: Object.fromEntries(
    (process.env['BENCH_EDGE_B_ENV'] ?? '')
      .split(' ')
      .filter((kv) => kv.includes('='))
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  ) as Record<string, string>,
};

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === 'object' ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

export interface Service {
  port: number;
  proc: Managed;
  /** pids whose CPU and RSS count as this service's (nginx: master and workers) */
  pids(): number[];
}

export interface Rig {
  dir: string;
  notes: string[];
  nginx?: NginxInfo;
  upstream: Service;
  nginxStream?: Service;
  nginxAudit?: Service;
  edge?: Service;
  edgeB?: Service;
  bare?: Service;
  policy?: Service;
  redis?: Service;
  /** why a candidate is unavailable */
  skipped: Partial<Record<Candidate, string>>;
  candidates: Candidate[];
  port(c: Candidate): number;
  /** a candidate's name in the report */
  label(c: Candidate): string;
  /** the proxy process(es) of a candidate (none for direct) */
  proxyPids(c: Candidate): number[];
  /** stops and starts the edge (fresh process; same port, same policy service) */
  restartEdge(variant?: 'a' | 'b', extraNodeArgs?: string[]): Promise<void>;
  /** stops and starts node-bare (fresh process; same port) */
  restartBare(): Promise<void>;
  /** stops and starts nginx-stream (fresh processes; same port) */
  restartNginxStream(): Promise<void>;
  /** the same for nginx-audit */
  restartNginxAudit(): Promise<void>;
  /** .cpuprofile files the edge wrote so far (BENCH_PROFILE=1) */
  edgeProfiles(): string[];
  stop(): Promise<void>;
}

export interface RigOptions {
  edge?: boolean;
  nginxStream?: boolean;
  /** open files every proxy process must be allowed */
  noFile?: number;
  /** the scenario drives load with wrk */
  needWrk?: boolean;
}

function makeCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'server.pem');
  const key = join(dir, 'server.key');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${SNI}`, '-addext', `subjectAltName=DNS:${SNI},DNS:*.${SNI},IP:127.0.0.1`],
    { stdio: 'ignore' },
  );
  chmodSync(key, 0o644);
  return { cert, key };
}

function writeBodies(www: string): void {
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, 'small'), Buffer.alloc(SMALL_BYTES, 'x'));
  const fd = openSync(join(www, 'big'), 'w');
  const chunk = randomBytes(1024 * 1024);
  for (let i = 0; i < BIG_BYTES / chunk.length; i++) writeSync(fd, chunk);
  closeSync(fd);
}

function userLine(): string {
  return typeof process.getuid === 'function' && process.getuid() === 0 ? 'user root root;' : '';
}

function upstreamConf(dir: string, port: number, cert: { cert: string; key: string }, workers: number, conns: number): string {
  const t = (n: string): string => join(dir, 'tmp', n);
  return `# generated by test/bench (upstream)
${userLine()}
worker_processes ${workers};
daemon off;
pid ${join(dir, 'upstream.pid')};
error_log ${join(dir, 'upstream-error.log')} warn;
worker_rlimit_nofile ${conns * 2 + 1024};
events { worker_connections ${conns + 512}; multi_accept on; }
http {
  access_log off;
  client_body_temp_path ${t('body')};
  proxy_temp_path ${t('proxy')};
  fastcgi_temp_path ${t('fastcgi')};
  uwsgi_temp_path ${t('uwsgi')};
  scgi_temp_path ${t('scgi')};
  default_type application/octet-stream;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
  client_header_timeout 600s;
  send_timeout 600s;
  server {
    listen 127.0.0.1:${port} ssl backlog=${conns};
    server_name _;
    ssl_certificate ${cert.cert};
    ssl_certificate_key ${cert.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    root ${join(dir, 'www')};
    location / { }
  }
}
`;
}

/**
 * nginx stream + ssl_preread. name nginx-audit: the same, doing what the edge's contract asks of it
 * on every connection (ARCHITECTURE.md): a half-close passed on, not turned into a full close
 * (proxy_half_close on), and a log line at its end, written as the edge writes its own (gathered,
 * ~8 KiB at a time, at most 200 ms late). It still sends no events anywhere.
 */
function streamConf(dir: string, info: NginxInfo, port: number, upstreamPort: number, conns: number, name: 'nginx-stream' | 'nginx-audit' = 'nginx-stream'): string {
  const audit = name === 'nginx-audit';
  const logFormat = audit ? `\n  log_format flows '{"time":"$time_iso8601","src":"$remote_addr:$remote_port","sni":"$ssl_preread_server_name","dst":"$upstream_addr","status":$status,"bytesUp":$bytes_received,"bytesDown":$bytes_sent,"seconds":$session_time}';` : '';
  const perConnection = audit ? `\n    proxy_half_close on;\n    access_log ${join(dir, 'nginx-audit-access.log')} flows buffer=8k flush=200ms;` : '';
  return `# generated by test/bench (nginx stream + ssl_preread, routing by SNI${audit ? '; half-close and an access log line per connection' : ''})
${info.loadStream}
${userLine()}
worker_processes 1;
daemon off;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}-error.log`)} warn;
worker_rlimit_nofile ${conns * 2 + 1024};
events { worker_connections ${conns * 2 + 512}; multi_accept on; }
stream {${logFormat}
  map $ssl_preread_server_name $bench_backend {
    ${SNI} 127.0.0.1:${upstreamPort};
    default 127.0.0.1:9;
  }
  server {
    listen 127.0.0.1:${port} backlog=${conns};
    ssl_preread on;
    proxy_pass $bench_backend;
    proxy_connect_timeout 5s;
    proxy_timeout 600s;${perConnection}
  }
}
`;
}

const PROFILE = `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: bench
mode: enforce
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: bench
    action: allow
    fqdns: ["${SNI}", "*.${SNI}"]
    allowPrivate: ["127.0.0.0/8"]
`;

/** Config keys the built edge may not know yet (the schema is strict): only set those it has. */
function edgeOptionalKeys(): Record<string, unknown> {
  const bundle = join(ROOT, 'dist/apps/edge-proxy/main.js');
  const text = existsSync(bundle) ? readFileSync(bundle, 'utf8') : '';
  const want: Record<string, unknown> = { maxConnections: 1_000_000, maxConnectionsPerSource: 1_000_000, drainTimeoutMs: 500 };
  return Object.fromEntries(Object.entries(want).filter(([k]) => text.includes(k)));
}

/** The built apps must exist; warn when sources are newer than the bundles. */
export function checkBuild(): string[] {
  const notes: string[] = [];
  for (const app of ['edge-proxy', 'policy-service']) {
    const main = join(ROOT, 'dist/apps', app, 'main.js');
    if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  }
  const built = statSync(join(ROOT, 'dist/apps/edge-proxy/main.js')).mtimeMs;
  const newest = (d: string): number => {
    let m = 0;
    for (const f of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, f.name);
      if (f.isDirectory()) m = Math.max(m, newest(p));
      else if (f.name.endsWith('.ts') && !f.name.endsWith('.spec.ts')) m = Math.max(m, statSync(p).mtimeMs);
    }
    return m;
  };
  const src = Math.max(...['edge', 'platform', 'sniff', 'flow-events'].map((l) => newest(join(ROOT, 'libs', l, 'src'))));
  notes.push(`edge-proxy bundle built ${new Date(built).toISOString()}${src > built ? ` — OLDER than its sources (newest ${new Date(src).toISOString()}): run \`npm run build\` for current figures` : ''}`);
  return notes;
}

/** GET through a candidate with SNI bench.test; resolves the status code (0 on a connection failure). */
export function httpsGet(port: number, path = '/small', timeoutMs = 3_000): Promise<number> {
  return new Promise((res) => {
    const req = request({ host: '127.0.0.1', port, path, servername: SNI, headers: { host: SNI }, rejectUnauthorized: false, agent: false, timeout: timeoutMs }, (r) => {
      r.resume();
      r.on('end', () => res(r.statusCode ?? 0));
      r.on('error', () => res(0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => res(0));
    req.end();
  });
}

async function waitForGet(name: string, port: number, proc: Managed, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if ((await httpsGet(port)) === 200) return;
    if (proc.child.exitCode !== null) throw new Error(`${name} exited:\n${proc.tail()}`);
    if (Date.now() > until) throw new Error(`${name}: no 200 for GET /small through port ${port} within ${timeoutMs} ms:\n${proc.tail()}`);
    await sleep(200);
  }
}

const CONFIG_FILE = 'portcullis.yaml';

export interface ControlPlane {
  redis: Service;
  policy: Service;
  /** the one config file (redis, policy and the given edge section) */
  configPath: string;
  config: Record<string, unknown>;
}

/**
 * redis-server (private, on a free port) and the built policy-service seeded with the bench
 * profile, as separate processes; the config file they share also carries `extra` (edge, log).
 * Stops what it started if it fails.
 */
export async function startControlPlane(dir: string, extra: { edge?: Record<string, unknown>; log?: Record<string, unknown> } = {}): Promise<ControlPlane> {
  if (!which('redis-server')) throw new Error('redis-server is needed (policy store, verdict cache, flow events): apt-get install redis-server');
  const redisPort = await freePort();
  const rp = launch('redis-server', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { logFile: join(dir, 'redis.log') });
  const redis: Service = { port: redisPort, proc: rp, pids: () => [rp.pid] };
  try {
    await waitForPort(rp, redisPort);
    const policyPort = await freePort();
    writeFileSync(join(dir, 'profile.yaml'), PROFILE);
    const config = {
      redis: { url: `redis://127.0.0.1:${redisPort}`, keyPrefix: 'bench' },
      // a verdict TTL of an hour: after the warm-up the edge serves every flow from its L1
      policy: { listen: `127.0.0.1:${policyPort}`, profile: join(dir, 'profile.yaml'), adminToken: 'bench-admin-token', verdictTtlMs: 3_600_000 },
      edge: { policyService: `127.0.0.1:${policyPort}`, ...extra.edge },
      ...(extra.log ? { log: extra.log } : {}),
    };
    const configPath = join(dir, CONFIG_FILE);
    writeFileSync(configPath, stringify(config));
    // the policy service logs at info whatever the edge's level: its readiness is a log line
    const policyConfig = join(dir, 'policy.yaml');
    writeFileSync(policyConfig, stringify({ ...config, log: { level: 'info' } }));
    const pp = launch('policy-service', process.execPath, [join(ROOT, 'dist/apps/policy-service/main.js'), '--config', policyConfig], { cwd: dir, logFile: join(dir, 'policy.log') });
    const policy: Service = { port: policyPort, proc: pp, pids: () => [pp.pid] };
    try {
      await waitForLog(pp, 'policy-service listening');
    } catch (err) {
      await pp.stop(1_000);
      throw err;
    }
    return { redis, policy, configPath, config };
  } catch (err) {
    await rp.stop(1_000);
    throw err;
  }
}

export async function startRig(opts: RigOptions = {}): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  registerTempDir(dir);
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'tmp'));
  const notes: string[] = [];
  const skipped: Rig['skipped'] = {};
  const started: Service[] = [];
  const conns = Math.max(4096, opts.noFile ?? 0);
  let noFile: number | undefined;
  if (opts.noFile) {
    // each relayed flow holds two sockets in a proxy; check `ulimit -n` and raise it for the children
    const lim = noFileLimits();
    const want = opts.noFile * 2 + 1024;
    if (lim.soft < want) noFile = Math.min(want, lim.hard);
    if (lim.hard < want) notes.push(`open-files limit: hard ${lim.hard} < ${want} wanted for ${opts.noFile} flows; the proxies get ${lim.hard}`);
  }

  const tools = ensureTools();
  notes.push(...tools.notes);
  const ng = nginxInfo();
  const stopStarted = async (): Promise<void> => {
    await Promise.all(started.map((s) => s.proc.stop(3_000)));
  };
  try {
    if ('missing' in ng) throw new BenchSkip(`needs nginx (the upstream and the nginx-stream candidate): ${ng.missing}; ${tools.notes.join('; ') || 'not installed'}`);
    if (opts.needWrk && !which('wrk')) throw new BenchSkip(`needs wrk: ${tools.notes.join('; ') || 'not installed'}`);
    const cert = makeCert(dir);
    writeBodies(join(dir, 'www'));

    // upstream
    const upPort = await freePort();
    writeFileSync(join(dir, 'upstream.conf'), upstreamConf(dir, upPort, cert, settings.upstreamWorkers, conns));
    const upProc = launch('nginx-upstream', ng.bin, ['-p', `${dir}/`, '-c', join(dir, 'upstream.conf'), '-e', join(dir, 'upstream-error.log')], { logFile: join(dir, 'upstream.out'), ...(noFile ? { noFile } : {}) });
    const upstream: Service = { port: upPort, proc: upProc, pids: () => groupPids(upProc.pid) };
    started.push(upstream);
    await waitForPort(upProc, upPort);
    if ((await httpsGet(upPort)) !== 200) throw new Error(`upstream nginx does not serve /small:\n${upProc.tail()}\n${readFileSync(join(dir, 'upstream-error.log'), 'utf8').slice(-2000)}`);

    // nginx stream + ssl_preread
    let nginxStream: Service | undefined;
    let nginxAudit: Service | undefined;
    const streamPort = await freePort();
    const auditPort = await freePort();
    const startStream = async (name: 'nginx-stream' | 'nginx-audit' = 'nginx-stream'): Promise<Service> => {
      const port = name === 'nginx-audit' ? auditPort : streamPort;
      const conf = join(dir, `${name}.conf`);
      writeFileSync(conf, streamConf(dir, ng, port, upPort, conns, name));
      const p = launch(name, ng.bin, ['-p', `${dir}/`, '-c', conf, '-e', join(dir, `${name}-error.log`)], { logFile: join(dir, `${name}.out`), ...(noFile ? { noFile } : {}) });
      const svc: Service = { port, proc: p, pids: () => groupPids(p.pid) };
      await waitForPort(p, port);
      await waitForGet(name, port, p);
      return svc;
    };
    if (opts.nginxStream !== false) {
      nginxStream = await startStream();
      started.push(nginxStream);
      if (settings.nginxAudit) {
        nginxAudit = await startStream('nginx-audit');
        started.push(nginxAudit);
        notes.push('nginx-audit: nginx-stream with proxy_half_close on (a half-close passed on, as the edge must) and an access log line per connection (buffer=8k flush=200ms, as the edge gathers its log lines); no events sent anywhere');
      }
    }

    // redis + policy-service + edge-proxy
    let edge: Service | undefined;
    let edgeB: Service | undefined;
    let policy: Service | undefined;
    let redis: Service | undefined;
    const edgePort = await freePort();
    const edgeBPort = await freePort();
    let edgeGeneration = 0;
    const profDir = join(dir, 'cpuprofile');
    const cfgPath = join(dir, CONFIG_FILE);
    const cfgBPath = join(dir, 'edge-b.yaml');
    const startEdge = async (variant: 'a' | 'b' = 'a', extraArgs: string[] = []): Promise<Service> => {
      edgeGeneration++;
      const port = variant === 'a' ? edgePort : edgeBPort;
      const main = variant === 'b' && settings.edgeBDist ? join(resolve(settings.edgeBDist), 'apps/edge-proxy/main.js') : join(ROOT, 'dist/apps/edge-proxy/main.js');
      const args = [...(variant === 'b' && settings.edgeBNodeArgs.length ? settings.edgeBNodeArgs : settings.edgeNodeArgs), ...extraArgs, ...(settings.profile ? ['--cpu-prof', '--cpu-prof-dir', profDir] : []), main, '--config', variant === 'a' ? cfgPath : cfgBPath];
      const p = launch(variant === 'a' ? 'edge-proxy' : 'edge-proxy-b', process.execPath, args, { cwd: dir, logFile: join(dir, `edge-${variant}-${edgeGeneration}.log`), ...(noFile ? { noFile } : {}), ...(variant === 'b' ? { env: settings.edgeBEnv } : {}) });
      if (settings.profile) {
        // the bundle may be rebuilt meanwhile: keep the source map this process started with
        mkdirSync(profDir, { recursive: true });
        copyFileSync(join(ROOT, 'dist/apps/edge-proxy/main.js.map'), join(profDir, `edge-${p.pid}.js.map`));
      }
      await waitForPort(p, port);
      await waitForGet(`edge (${variant})`, port, p); // also warms the verdict (L1)
      return { port, proc: p, pids: () => groupPids(p.pid) }; // the group: cluster workers too (edge.workers > 1)
    };
    if (opts.edge !== false) {
      notes.push(...checkBuild());
      const cp = await startControlPlane(dir, {
        edge: {
          nodeId: 'bench-edge',
          listeners: [{ name: 'tls', mode: 'sni', listen: `127.0.0.1:${edgePort}`, upstreamPort: upPort }],
          resolve: { [SNI]: ['127.0.0.1'] },
          ...edgeOptionalKeys(),
          ...(settings.edgeWorkers > 1 ? { workers: settings.edgeWorkers } : {}),
        },
        log: { level: settings.edgeLogLevel },
      });
      redis = cp.redis;
      policy = cp.policy;
      started.push(redis, policy);
      const withB = Boolean(settings.edgeBLogLevel || settings.edgeBDist || settings.edgeBRelay || settings.edgeBMetrics || settings.edgeBNodeArgs.length || Object.keys(settings.edgeBEnv).length);
      const bFirst = withB && settings.edgeBFirst;
      const startMainEdge = async (): Promise<void> => {
        edge = await startEdge();
        started.push(edge);
      };
      if (!bFirst) await startMainEdge();
      if (withB) {
        const c = cp.config as { edge: Record<string, unknown> };
        const metrics = settings.edgeBMetrics ? { metrics: { listen: `127.0.0.1:${await freePort()}` } } : {};
        writeFileSync(cfgBPath, stringify({ ...c, edge: { ...c.edge, nodeId: 'bench-edge-b', ...(settings.edgeBRelay ? { relay: settings.edgeBRelay } : {}), listeners: [{ name: 'tls', mode: 'sni', listen: `127.0.0.1:${edgeBPort}`, upstreamPort: upPort }] }, log: { level: settings.edgeBLogLevel || settings.edgeLogLevel }, ...metrics }));
        edgeB = await startEdge('b');
        started.push(edgeB);
        if (bFirst) await startMainEdge();
        notes.push(`edge-b: ${settings.edgeBDist ? `the edge built in ${settings.edgeBDist}` : 'the same edge build'}, same policy service, log level ${settings.edgeBLogLevel || settings.edgeLogLevel}, relay ${settings.edgeBRelay || 'as configured (native unless the addon is missing)'}${settings.edgeBMetrics ? ', metrics.listen on (Prometheus endpoint, not scraped during the rounds)' : ''}${settings.edgeBNodeArgs.length ? `, node ${settings.edgeBNodeArgs.join(' ')}` : ''}${Object.keys(settings.edgeBEnv).length ? `, env ${process.env['BENCH_EDGE_B_ENV']}` : ''}; started ${bFirst ? 'before' : 'after'} the edge (the edge process started first tended to cost more per connection: run an A/B both ways, BENCH_EDGE_B_FIRST)`);
      }
      notes.push(`edge: node ${process.version}, log level ${settings.edgeLogLevel} (flow logs to a file), flow events to a local redis-server${settings.profile ? ', --cpu-prof (figures inflated by the profiler)' : ''}${settings.edgeNodeArgs.length ? `, node ${settings.edgeNodeArgs.join(' ')}` : ''}`);
    }

    let bare: Service | undefined;
    const barePort = await freePort();
    const startBare = async (): Promise<Service> => {
      const p = launch('node-bare', process.execPath, [join(ROOT, 'test/bench/support/bare-relay.mjs'), String(barePort), String(upPort)], { cwd: dir, logFile: join(dir, 'node-bare.log'), ...(noFile ? { noFile } : {}) });
      await waitForPort(p, barePort);
      await waitForGet('node-bare', barePort, p);
      return { port: barePort, proc: p, pids: () => groupPids(p.pid) };
    };
    if (settings.bare) {
      bare = await startBare();
      started.push(bare);
      notes.push('node-bare: test/bench/support/bare-relay.mjs, a minimal Node relay (first bytes, connect, pipe; no parsing, policy, logs or events): the floor for a Node proxy');
    }

    const candidates: Candidate[] = ['direct', ...(edge ? (['edge'] as const) : []), ...(edgeB ? (['edge-b'] as const) : []), ...(bare ? (['node-bare'] as const) : []), ...(nginxStream ? (['nginx-stream'] as const) : []), ...(nginxAudit ? (['nginx-audit'] as const) : [])];
    const rig: Rig = {
      dir,
      notes,
      nginx: ng,
      upstream,
      ...(nginxStream ? { nginxStream } : {}),
      ...(nginxAudit ? { nginxAudit } : {}),
      ...(edge ? { edge } : {}),
      ...(edgeB ? { edgeB } : {}),
      ...(bare ? { bare } : {}),
      ...(policy ? { policy } : {}),
      ...(redis ? { redis } : {}),
      skipped,
      candidates,
      port: (c) => ({ direct: upPort, edge: edgePort, 'edge-b': edgeBPort, 'node-bare': barePort, 'nginx-stream': streamPort, 'nginx-audit': auditPort })[c],
      label: (c) =>
        c === 'edge-b'
          ? settings.edgeBDist
            ? `edge-b (${settings.edgeBDist})`
            : settings.edgeBRelay
              ? `edge-b (relay ${settings.edgeBRelay})`
              : settings.edgeBMetrics
                ? 'edge-b (metrics on)'
                : settings.edgeBNodeArgs.length
                  ? `edge-b (node ${settings.edgeBNodeArgs.join(' ')})`
                : Object.keys(settings.edgeBEnv).length
                  ? `edge-b (${process.env['BENCH_EDGE_B_ENV']})`
                  : `edge-b (log ${settings.edgeBLogLevel})`
          : c === 'edge' && settings.edgeBLogLevel
            ? `edge (log ${settings.edgeLogLevel})`
            : c === 'edge' && settings.edgeBRelay
              ? 'edge (relay native)'
              : c,
      proxyPids: (c) => ({ direct: [], edge: rig.edge?.pids() ?? [], 'edge-b': rig.edgeB?.pids() ?? [], 'node-bare': rig.bare?.pids() ?? [], 'nginx-stream': rig.nginxStream?.pids() ?? [], 'nginx-audit': rig.nginxAudit?.pids() ?? [] })[c],
      restartEdge: async (variant: 'a' | 'b' = 'a', extraArgs: string[] = []) => {
        const old = variant === 'a' ? rig.edge : rig.edgeB;
        if (!old) return;
        await old.proc.stop(5_000);
        const fresh = await startEdge(variant, extraArgs);
        if (variant === 'a') rig.edge = fresh;
        else rig.edgeB = fresh;
        started.push(fresh);
      },
      restartBare: async () => {
        if (!rig.bare) return;
        await rig.bare.proc.stop(3_000);
        rig.bare = await startBare();
        started.push(rig.bare);
      },
      restartNginxStream: async () => {
        if (!rig.nginxStream) return;
        await rig.nginxStream.proc.stop(3_000);
        rig.nginxStream = await startStream();
        started.push(rig.nginxStream);
      },
      restartNginxAudit: async () => {
        if (!rig.nginxAudit) return;
        await rig.nginxAudit.proc.stop(3_000);
        rig.nginxAudit = await startStream('nginx-audit');
        started.push(rig.nginxAudit);
      },
      edgeProfiles: () => (existsSync(profDir) ? readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(profDir, f)) : []),
      stop: async () => {
        // the edge first (it drains its flows and writes its CPU profile), then the rest
        await Promise.all([rig.edge?.proc.stop(8_000), rig.edgeB?.proc.stop(8_000)]);
        await stopStarted();
        removeTempDir(dir, settings.keep || settings.profile);
      },
    };
    return rig;
  } catch (err) {
    await stopStarted();
    removeTempDir(dir, settings.keep);
    throw err;
  }
}
