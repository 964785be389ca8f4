// The deployment artefacts under docker/ (Dockerfile, compose, HAProxy, Prometheus, Grafana,
// Kubernetes), checked without a Docker engine or a cluster: parsed, cross-checked against each
// other and against the real config schema. External validators (docker compose or
// docker-compose, haproxy, promtool, kubectl) also run when installed; when one is absent its
// test is skipped with a note saying so.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml';
import { parseProfileText } from '@portcullis/fqdn-policy';
import { ConfigError, parseConfig, splitHostPort } from '@portcullis/platform';
import type { PortcullisConfig } from '@portcullis/platform';

const ROOT = resolve(__dirname, '../..');
const DOCKER = join(ROOT, 'docker');
const at = (...p: string[]): string => join(DOCKER, ...p);
const read = (...p: string[]): string => readFileSync(at(...p), 'utf8');

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

/** Compose files use merge keys (`<<: *edge`), as docker compose does. */
const readYaml = (...p: string[]): unknown => parseYaml(read(...p), { merge: true });

const METRICS = [
  'portcullis_flows_total',
  'portcullis_sniff_total',
  'portcullis_decide_duration_seconds',
  'portcullis_l1_cache_total',
  'portcullis_verdict_cache_total',
  'portcullis_active_flows',
  'portcullis_bytes_total',
  'portcullis_audit_queue_depth',
  'portcullis_spool_bytes',
  'portcullis_events_dropped_total',
  'portcullis_stream_lag',
  'portcullis_stream_pending',
  'portcullis_policy_version',
];

// ---------------------------------------------------------------------------------------------
// Config validation against the real schema, with the keys planned in issue 8 treated as pending.
//
// PENDING KEYS: the deployment configs already use keys the schema does not have yet:
//   metrics (top level; { listen: HOST:PORT }: /metrics, /healthz, /readyz)
//   edge.workers
//   edge.listeners[].proxyProtocol ("v2") and edge.listeners[].trustedProxies ([CIDR])
// A config is validated as written; only an "unknown key" problem at exactly one of these paths
// is tolerated: that key is removed and the rest must validate. Once the schema knows a key its
// problems are real ones, so nothing here needs to change when the keys land; when all of them
// have landed, PLANNED_KEYS can go.
// ---------------------------------------------------------------------------------------------
const PLANNED_KEYS = [/^metrics$/, /^edge\.workers$/, /^edge\.listeners\[\d+\]\.proxyProtocol$/, /^edge\.listeners\[\d+\]\.trustedProxies$/];

interface Validated {
  config: Readonly<PortcullisConfig>;
  /** the file as written (planned keys included) */
  raw: Obj;
  /** planned keys the schema does not know yet (stripped before validating) */
  pending: string[];
}

function deletePath(root: unknown, path: string): void {
  const parts = path.split(/\.|\[(\d+)\]/).filter((p) => p !== undefined && p !== '');
  let node: unknown = root;
  for (const p of parts.slice(0, -1)) node = Array.isArray(node) ? node[Number(p)] : obj(node)[p];
  const last = parts[parts.length - 1];
  if (last !== undefined && node && typeof node === 'object') delete (node as Obj)[last];
}

function validateConfigFile(file: string): Validated {
  const raw = obj(parseYaml(readFileSync(file, 'utf8')));
  try {
    return { config: parseConfig(raw, file), raw, pending: [] };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const pending: string[] = [];
    const real: string[] = [];
    for (const problem of err.problems) {
      const m = /^(.+): unknown key$/.exec(problem);
      if (m?.[1] && PLANNED_KEYS.some((k) => k.test(m[1] as string))) pending.push(m[1]);
      else real.push(problem);
    }
    if (real.length > 0) throw new Error(`${file} does not validate:\n  - ${real.join('\n  - ')}`);
    const stripped = structuredClone(raw);
    for (const p of pending) deletePath(stripped, p);
    return { config: parseConfig(stripped, file), raw, pending };
  }
}

const rawMetricsListen = (v: Validated): string => str(obj(v.raw['metrics'])['listen']);
const portOf = (hostPort: string): number => splitHostPort(hostPort).port;

function rawListeners(v: Validated): Obj[] {
  return arr(obj(v.raw['edge'])['listeners']).map(obj);
}

/** Shape of the planned keys, checked here while the schema cannot. */
function expectPlannedKeysWellFormed(v: Validated): void {
  const metrics = rawMetricsListen(v);
  expect(metrics, 'metrics.listen').toMatch(/^[A-Za-z0-9.-]+:\d{1,5}$/);
  for (const l of rawListeners(v)) {
    if (l['proxyProtocol'] === undefined) continue;
    expect(l['proxyProtocol'], `listener ${str(l['name'])} proxyProtocol`).toBe('v2');
    const trusted = arr(l['trustedProxies']);
    expect(trusted.length, `listener ${str(l['name'])}: proxyProtocol needs trustedProxies`).toBeGreaterThan(0);
    for (const c of trusted) expect(str(c)).toMatch(/^[0-9a-fA-F:.]+\/\d{1,3}$/);
  }
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}
function cidrContains(cidr: string, ip: string): boolean {
  const [base = '', bits = '32'] = cidr.split('/');
  const n = Number(bits);
  const size = 2 ** (32 - n);
  return Math.floor(ipv4ToInt(ip) / size) === Math.floor(ipv4ToInt(base) / size);
}

// ---------------------------------------------------------------------------------------------
// External tools
// ---------------------------------------------------------------------------------------------
function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}
function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): { code: number | null; out: string; stdout: string } {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...opts.env } });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, stdout: r.stdout ?? '' };
}
/** `docker compose` (v2 plugin) or `docker-compose` (v1), whichever answers. */
function composeCommand(): string[] | undefined {
  if (has('docker') && run('docker', ['compose', 'version']).code === 0) return ['docker', 'compose'];
  if (has('docker-compose') && run('docker-compose', ['version']).code === 0) return ['docker-compose'];
  return undefined;
}
function skipNote(skip: (note?: string) => never, what: string): never {
  const note = `${what} not installed here: this check is skipped (the static checks still ran)`;
  console.warn(`note: ${note}`);
  return skip(note);
}

// ---------------------------------------------------------------------------------------------
// The compose file and the configs it mounts
// ---------------------------------------------------------------------------------------------
const APPS = ['edge-proxy', 'policy-service', 'audit-service', 'cli'] as const;
type App = (typeof APPS)[number];
const CONFIG_FOR: Record<App, string> = { 'edge-proxy': 'edge.yaml', 'policy-service': 'policy.yaml', 'audit-service': 'audit.yaml', cli: 'cli.yaml' };

const compose = obj(readYaml('compose.yaml'));
const services = obj(compose['services']);
const svc = (name: string): Obj => obj(services[name]);
const appOf = (s: Obj): App | undefined => {
  const app = str(obj(obj(s['build'])['args'])['APP']);
  return (APPS as readonly string[]).includes(app) ? (app as App) : undefined;
};
/** Services built from docker/Dockerfile (`started`: those `docker compose up` starts, without a profile). */
const portcullis = Object.entries(services)
  .map(([name, s]) => ({ name, s: obj(s), app: appOf(obj(s)) }))
  .filter((e): e is { name: string; s: Obj; app: App } => e.app !== undefined);
const started = portcullis.filter((e) => arr(e.s['profiles']).length === 0);
const ofApp = (app: App): typeof started => started.filter((e) => e.app === app);

/** Validated on first use, so a broken config fails the tests that need it, not the whole file. */
function lazyConfigs<K extends string>(files: Record<K, string>): Record<K, Validated> {
  const cache = new Map<K, Validated>();
  return new Proxy({} as Record<K, Validated>, {
    get: (_t, key) => {
      const k = key as K;
      if (!cache.has(k)) cache.set(k, validateConfigFile(files[k]));
      return cache.get(k);
    },
  });
}
const composeConfigs = lazyConfigs(Object.fromEntries(APPS.map((app) => [app, at('config', CONFIG_FOR[app])])) as Record<App, string>);
const k8sConfigs = lazyConfigs({
  'edge-proxy': at('k8s/config/edge.yaml'),
  'policy-service': at('k8s/config/policy.yaml'),
  'audit-service': at('k8s/config/audit.yaml'),
});

/** Container ports a compose service declares (expose and published). */
function containerPorts(s: Obj): number[] {
  const fromExpose = arr(s['expose']).map((p) => Number(str(p).split('/')[0]));
  const fromPorts = arr(s['ports']).map((p) => Number(str(p).split(':').pop()?.split('/')[0]));
  return [...fromExpose, ...fromPorts];
}
/** The ports a Portcullis app listens on, from its config. */
function appPorts(app: App, v: Validated): number[] {
  const ports: number[] = [];
  if (app === 'cli') return ports;
  ports.push(portOf(rawMetricsListen(v)));
  if (app === 'edge-proxy') ports.push(...v.config.edge.listeners.map((l) => portOf(l.listen)));
  if (app === 'policy-service') ports.push(portOf(v.config.policy.listen));
  return ports;
}
/** Directories an app writes to: they must be absolute and on a writable mount (the root filesystem is read-only). */
function writableDirs(app: App, v: Validated): string[] {
  if (app === 'edge-proxy' && v.config.edge.spoolDir && v.config.edge.spoolMaxBytes > 0) return [v.config.edge.spoolDir];
  if (app === 'audit-service') return [v.config.audit.log.replace(/\/[^/]*$/, '')];
  return [];
}
const under = (path: string, mount: string): boolean => path === mount || path.startsWith(`${mount.replace(/\/$/, '')}/`);
function networksOf(s: Obj): Record<string, Obj> {
  const n = s['networks'];
  if (Array.isArray(n)) return Object.fromEntries(n.map((k) => [str(k), {}]));
  return Object.fromEntries(Object.entries(obj(n)).map(([k, v]) => [k, obj(v)]));
}
/** Names Docker's DNS answers for a service on a network: its name, container_name and aliases (not `hostname`). */
function namesOn(name: string, s: Obj, network: string): string[] {
  const n = networksOf(s)[network];
  if (!n) return [];
  return [name, str(s['container_name']), ...arr(n['aliases']).map(str)].filter(Boolean);
}
function reachable(from: Obj, host: string): string[] {
  const nets = Object.keys(networksOf(from));
  return Object.entries(services).filter(([name, s]) => nets.some((net) => namesOn(name, obj(s), net).includes(host))).map(([name]) => name);
}
function volumeMounts(s: Obj): { source: string; target: string; readOnly: boolean }[] {
  return arr(s['volumes']).map((v) => {
    const [source = '', target = '', mode = ''] = str(v).split(':');
    return { source, target, readOnly: mode.split(',').includes('ro') };
  });
}

// ---------------------------------------------------------------------------------------------
describe('docker/config and docker/k8s/config: every config validates against the real schema', () => {
  const files = [...readdirSync(at('config')).map((f) => at('config', f)), ...readdirSync(at('k8s/config')).map((f) => at('k8s/config', f))].filter(
    (f) => /\.ya?ml$/.test(f),
  );

  it.each(files.filter((f) => !f.endsWith('profile.yaml')).map((f) => [f.slice(ROOT.length + 1), f]))('%s', (_rel, file) => {
    const v = validateConfigFile(file);
    if (v.pending.length) console.warn(`note: ${file.slice(ROOT.length + 1)} uses planned config keys not in the schema yet: ${v.pending.join(', ')}`);
    const usedPlanned = rawMetricsListen(v) !== '' || rawListeners(v).some((l) => 'proxyProtocol' in l);
    if (usedPlanned) expectPlannedKeysWellFormed(v);
  });

  it.each(files.filter((f) => f.endsWith('profile.yaml')).map((f) => [f.slice(ROOT.length + 1), f]))('%s is a valid FQDN profile', (_rel, file) => {
    const r = parseProfileText(readFileSync(file, 'utf8'));
    expect(r.ok ? [] : r.problems).toEqual([]);
  });

  it('the service configs bind where containers can reach them and expose metrics', () => {
    for (const set of [composeConfigs, k8sConfigs]) {
      expect(set['policy-service'].config.policy.listen).toMatch(/^0\.0\.0\.0:/);
      for (const l of set['edge-proxy'].config.edge.listeners) expect(l.listen).toMatch(/^0\.0\.0\.0:/);
      for (const app of ['edge-proxy', 'policy-service', 'audit-service'] as const) {
        expect(rawMetricsListen(set[app]), `${app} metrics.listen`).toMatch(/^0\.0\.0\.0:\d+$/);
        expect(set[app].config.redis.url, `${app} redis.url`).toMatch(/^rediss?:\/\//);
      }
    }
  });

  it('an unknown key that is not a planned one is still refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-deploy-'));
    try {
      const file = join(dir, 'bad.yaml');
      writeFileSync(file, stringify({ metrics: { listen: '0.0.0.0:9464' }, edge: { listeners: [], bogus: 1 } }));
      expect(() => validateConfigFile(file)).toThrow(/edge\.bogus: unknown key/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('docker/Dockerfile', () => {
  const text = read('Dockerfile');
  const lines = text.split('\n');
  const idx = (re: RegExp): number => lines.findIndex((l) => re.test(l));
  const runtimeStart = idx(/^FROM .* AS runtime\b/);
  const runtime = lines.slice(runtimeStart).join('\n');

  it('is multi-stage and builds any app chosen with --build-arg APP', () => {
    expect(text.match(/^FROM /gm)?.length ?? 0).toBeGreaterThanOrEqual(3);
    expect(runtimeStart).toBeGreaterThan(0);
    expect(runtime).toMatch(/^ARG APP=/m);
    for (const app of ['edge-proxy', 'policy-service', 'audit-service', 'cli']) expect(runtime).toContain(app);
  });

  it('keeps npm ci cacheable: package*.json are copied before npm ci, sources after', () => {
    const copyPkg = idx(/^COPY package\.json package-lock\.json/);
    const npmCi = idx(/^(RUN\b.*|\s+)npm ci\b/);
    const copyAll = idx(/^COPY \. \./);
    expect(copyPkg).toBeGreaterThan(-1);
    expect(npmCi).toBeGreaterThan(copyPkg);
    expect(copyAll).toBeGreaterThan(npmCi);
    expect(text).toMatch(/npm ci --omit=dev/);
  });

  it('the runtime image has dist/, proto/, bin/, production node_modules and the container scripts', () => {
    for (const dir of ['dist', 'proto', 'bin', 'node_modules']) expect(runtime).toMatch(new RegExp(`^COPY --from=\\S+ \\S*/${dir} \\./${dir}$`, 'm'));
    expect(runtime).toMatch(/^COPY (--chmod=0?5[57]5 )?docker\/entrypoint\.sh docker\/healthcheck\.js \.\/docker\/$/m);
    for (const f of ['entrypoint.sh', 'healthcheck.js']) expect(existsSync(at(f))).toBe(true);
  });

  it('runs as a numeric non-root user with tini as PID 1 and has a HEALTHCHECK', () => {
    const user = /^USER (\d+)(?::(\d+))?$/m.exec(runtime);
    expect(user, 'USER uid:gid').not.toBeNull();
    expect(Number(user?.[1])).toBeGreaterThan(0);
    expect(runtime).toMatch(/^ENTRYPOINT \["\/usr\/bin\/tini", "--"/m);
    expect(runtime).toMatch(/apt-get install[^\n]*tini/);
    expect(runtime).toMatch(/^HEALTHCHECK [\s\S]*?CMD \["node", "\/app\/docker\/healthcheck\.js"\]/m);
  });

  it('docker/Dockerfile.dockerignore keeps local state out but nothing the build needs', () => {
    const patterns = read('Dockerfile.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#') && !l.startsWith('!'));
    for (const p of ['**/node_modules', 'dist', '.git']) expect(patterns).toContain(p);
    const needed = ['package.json', 'package-lock.json', 'nx.json', 'tsconfig.base.json', 'apps', 'libs', 'proto', 'bin', 'tools', 'docker/entrypoint.sh', 'docker/healthcheck.js'];
    for (const n of needed) {
      const hit = patterns.find((p) => p === n || n.startsWith(`${p}/`) || p === `**/${n}`);
      expect(hit, `${n} is excluded from the build context by "${hit}"`).toBeUndefined();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('docker/entrypoint.sh and docker/healthcheck.js', () => {
  it('entrypoint.sh is valid sh and refuses a bad APP or a missing config', () => {
    expect(run('sh', ['-n', at('entrypoint.sh')]).code).toBe(0);
    expect(run('sh', [at('entrypoint.sh')], { env: { APP: 'nope' } }).code).toBe(64);
    const missing = run('sh', [at('entrypoint.sh')], { env: { APP: 'edge-proxy', PORTCULLIS_CONFIG: join(tmpdir(), 'no-such-portcullis.yaml') } });
    expect(missing.code).toBe(78);
    expect(missing.out).toMatch(/no config at/);
  });

  it('entrypoint.sh runs the portcullis CLI for APP=cli', (ctx) => {
    if (!existsSync(join(ROOT, 'dist/apps/cli/main.js'))) ctx.skip('dist/ is not built (npm run build)');
    const r = run('sh', [at('entrypoint.sh'), 'policy', 'validate', at('config/profile.yaml')], { env: { APP: 'cli', PORTCULLIS_CONFIG: at('config/cli.yaml') } });
    expect(r.out).toMatch(/valid: profile "compose-demo"/);
    expect(r.code).toBe(0);
  });

  function probe(args: string[], env: NodeJS.ProcessEnv = {}): Promise<number | null> {
    return new Promise((done) => {
      const child = spawn(process.execPath, [at('healthcheck.js'), ...args], { cwd: ROOT, env: { ...process.env, HEALTHCHECK_TIMEOUT_MS: '2000', ...env }, stdio: 'ignore' });
      child.on('exit', (code) => done(code));
    });
  }

  let grpcServer: grpc.Server;
  let grpcPort = 0;
  const health = new HealthImplementation({ '': 'SERVING' });
  let httpServer: HttpServer;
  let httpPort = 0;
  let ready = true;
  let dir: string;

  beforeAll(async () => {
    grpcServer = new grpc.Server();
    health.addToServer(grpcServer);
    grpcPort = await new Promise<number>((ok, fail) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? fail(e) : ok(p))));
    httpServer = createServer((req, res) => {
      res.statusCode = req.url === '/readyz' ? (ready ? 200 : 503) : 404;
      res.end();
    });
    await new Promise<void>((ok) => httpServer.listen(0, '127.0.0.1', ok));
    const address = httpServer.address();
    httpPort = typeof address === 'object' && address ? address.port : 0;
    dir = mkdtempSync(join(tmpdir(), 'portcullis-health-'));
  });
  afterAll(async () => {
    grpcServer?.forceShutdown();
    await new Promise((ok) => httpServer?.close(ok));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('grpc mode follows grpc.health.v1 (SERVING → 0, NOT_SERVING or nothing listening → 1)', async () => {
    health.setStatus('', 'SERVING');
    expect(await probe(['grpc', `127.0.0.1:${grpcPort}`])).toBe(0);
    health.setStatus('', 'NOT_SERVING');
    expect(await probe(['grpc', `127.0.0.1:${grpcPort}`])).toBe(1);
    health.setStatus('', 'SERVING');
    expect(await probe(['grpc', '127.0.0.1:1'])).toBe(1);
  });

  it('http mode wants a 2xx from /readyz', async () => {
    ready = true;
    expect(await probe(['http', `http://127.0.0.1:${httpPort}/readyz`])).toBe(0);
    ready = false;
    expect(await probe(['http', `http://127.0.0.1:${httpPort}/readyz`])).toBe(1);
    ready = true;
  });

  it('without arguments it picks the probe from $APP and the ports from the config', async () => {
    const policyConfig = join(dir, 'policy.yaml');
    writeFileSync(policyConfig, stringify({ policy: { listen: `0.0.0.0:${grpcPort}` } }));
    expect(await probe([], { APP: 'policy-service', PORTCULLIS_CONFIG: policyConfig })).toBe(0);
    const edgeConfig = join(dir, 'edge.yaml');
    writeFileSync(edgeConfig, stringify({ metrics: { listen: `0.0.0.0:${httpPort}` } }));
    expect(await probe([], { APP: 'edge-proxy', PORTCULLIS_CONFIG: edgeConfig })).toBe(0);
    expect(await probe([], { APP: 'audit-service', PORTCULLIS_CONFIG: edgeConfig })).toBe(0);
    expect(await probe([], { APP: 'cli' })).toBe(0);
    expect(await probe([], { APP: 'bogus' })).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
describe('docker/compose.yaml', () => {
  it('runs 3 edges, 2 policy replicas and 2 audit consumers from the one Dockerfile', () => {
    expect(ofApp('edge-proxy').length).toBe(3);
    expect(ofApp('policy-service').length).toBe(2);
    expect(ofApp('audit-service').length).toBe(2);
    for (const { name, s } of portcullis) {
      expect(str(obj(s['build'])['dockerfile']), name).toBe('docker/Dockerfile');
      expect(existsSync(resolve(DOCKER, str(obj(s['build'])['context']), 'docker/Dockerfile')), `${name} build context`).toBe(true);
      expect(str(s['image']), name).toMatch(/^portcullis\//);
    }
  });

  it('every service has an image or a build, and depends_on names existing services', () => {
    for (const [name, raw] of Object.entries(services)) {
      const s = obj(raw);
      expect(Boolean(s['image']) || Boolean(s['build']), `${name}: image or build`).toBe(true);
      const deps = Array.isArray(s['depends_on']) ? s['depends_on'].map(str) : Object.keys(obj(s['depends_on']));
      for (const d of deps) expect(Object.keys(services), `${name} depends_on ${d}`).toContain(d);
      for (const net of Object.keys(networksOf(s))) expect(Object.keys(obj(compose['networks'])), `${name} network ${net}`).toContain(net);
    }
  });

  for (const { name, s, app } of portcullis) it(`${name}: config mount, ports, OTEL env, healthcheck, depends_on`, () => {
    const mounts = volumeMounts(s);
    const config = mounts.find((m) => m.target === '/etc/portcullis/portcullis.yaml');
    expect(config?.source, `${name} mounts its config`).toBe(`./config/${CONFIG_FOR[app]}`);
    const v = composeConfigs[app];

    for (const port of appPorts(app, v)) expect(containerPorts(s), `${name} exposes ${port}`).toContain(port);

    const env = obj(s['environment']);
    expect(env['OTEL_EXPORTER_OTLP_ENDPOINT']).toBe('http://jaeger:4318');
    expect(str(env['OTEL_SERVICE_NAME'])).not.toBe('');

    const deps = Object.keys(obj(s['depends_on']));
    expect(deps.length, `${name} depends_on`).toBeGreaterThan(0);
    if (app !== 'cli') {
      expect(deps).toContain('redis');
      const test = arr(obj(s['healthcheck'])['test']).map(str);
      expect(test.slice(0, 3)).toEqual(['CMD', 'node', '/app/docker/healthcheck.js']);
      if (app === 'policy-service') expect(test.slice(3)).toEqual(['grpc', `127.0.0.1:${portOf(v.config.policy.listen)}`]);
      else expect(test.slice(3)).toEqual(['http', `http://127.0.0.1:${portOf(rawMetricsListen(v))}/readyz`]);
    }
    if (app === 'edge-proxy') expect(deps).toEqual(expect.arrayContaining(ofApp('policy-service').map((p) => p.name)));
  });

  it('the services find each other under the names their configs use', () => {
    for (const { name, s, app } of portcullis) {
      const v = composeConfigs[app];
      if (v.config.redis.url) expect(reachable(s, new URL(v.config.redis.url).hostname), `${name} → redis`).toEqual(['redis']);
      if (app === 'edge-proxy') {
        const { host, port } = splitHostPort(v.config.edge.policyService);
        expect(reachable(s, host).sort(), `${name} → ${host}`).toEqual(ofApp('policy-service').map((p) => p.name).sort());
        expect(port).toBe(portOf(composeConfigs['policy-service'].config.policy.listen));
      }
      if (app === 'cli') expect(reachable(s, splitHostPort(v.config.policy.listen).host).length).toBeGreaterThan(0);
    }
    // the OTLP endpoint's host
    for (const { name, s } of started) expect(reachable(s, 'jaeger'), `${name} → jaeger`).toEqual(['jaeger']);
  });

  it('policy replicas get the profile their config seeds from; audit instances each keep their own log volume', () => {
    for (const { name, s } of ofApp('policy-service')) {
      const profile = volumeMounts(s).find((m) => m.target === composeConfigs['policy-service'].config.policy.profile);
      expect(profile?.source, `${name} mounts policy.profile`).toBe('./config/profile.yaml');
    }
    const logDir = composeConfigs['audit-service'].config.audit.log.replace(/\/[^/]+$/, '');
    const volumes = ofApp('audit-service').map(({ name, s }) => {
      const m = volumeMounts(s).find((x) => x.target === logDir);
      expect(m, `${name} has a volume at ${logDir}`).toBeDefined();
      expect(Object.keys(obj(compose['volumes']))).toContain(m?.source);
      return m?.source;
    });
    expect(new Set(volumes).size).toBe(volumes.length);
  });

  it('what the services write (edge spool, audit log) is on a writable volume, the root filesystem being read-only', () => {
    for (const { name, s, app } of portcullis) {
      expect(s['read_only'], `${name} read_only`).toBe(true);
      const writable = [...volumeMounts(s).filter((m) => !m.readOnly).map((m) => m.target), ...arr(s['tmpfs']).map(str)];
      for (const dir of writableDirs(app, composeConfigs[app])) {
        expect(dir, `${name}: ${dir} must be absolute`).toMatch(/^\//);
        expect(writable.some((m) => under(dir, m)), `${name}: ${dir} on a writable mount (${writable.join(', ')})`).toBe(true);
      }
    }
  });

  it('bind-mounted files exist', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const { source } of volumeMounts(obj(s))) {
        if (source.startsWith('./')) expect(existsSync(resolve(DOCKER, source)), `${name}: ${source}`).toBe(true);
      }
    }
  });

  it('Redis runs with AOF on, a volume and a healthcheck', () => {
    const redis = svc('redis');
    expect(arr(redis['command']).map(str).join(' ')).toMatch(/--appendonly yes/);
    expect(volumeMounts(redis).some((m) => m.target === '/data')).toBe(true);
    expect(redis['healthcheck']).toBeDefined();
  });

  it('Jaeger takes OTLP on 4317/4318 and serves its UI on 16686; Prometheus 9090; Grafana 3000', () => {
    const jaeger = svc('jaeger');
    expect(containerPorts(jaeger)).toEqual(expect.arrayContaining([4317, 4318, 16686]));
    expect(obj(jaeger['environment'])['COLLECTOR_OTLP_ENABLED']).toBe('true');
    expect(containerPorts(svc('prometheus'))).toContain(9090);
    expect(volumeMounts(svc('prometheus')).map((m) => m.source)).toContain('./prometheus.yml');
    expect(containerPorts(svc('grafana'))).toContain(3000);
    expect(volumeMounts(svc('grafana')).map((m) => m.target)).toEqual(expect.arrayContaining(['/etc/grafana/provisioning', '/var/lib/grafana/dashboards']));
    for (const name of ['redis', 'haproxy', 'prometheus', 'grafana']) expect(svc(name)['healthcheck'], `${name} healthcheck`).toBeDefined();
  });

  it('HAProxy is the published entry (8443) and the only trusted PROXY v2 sender; the sample upstream resolves', () => {
    const haproxy = svc('haproxy');
    expect(containerPorts(haproxy)).toContain(8443);
    expect(volumeMounts(haproxy).map((m) => m.source)).toContain('./haproxy.cfg');
    const haproxyIp = str(obj(networksOf(haproxy)['front'])['ipv4_address']);
    expect(haproxyIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const edge = composeConfigs['edge-proxy'];
    for (const l of rawListeners(edge)) {
      expect(l['proxyProtocol'], `listener ${str(l['name'])}`).toBe('v2');
      expect(arr(l['trustedProxies']).some((c) => cidrContains(str(c), haproxyIp)), 'trustedProxies holds HAProxy').toBe(true);
    }
    // upstream.test: the edges' static answer is the upstream's fixed address, which the profile allows
    const upstreamIp = str(obj(networksOf(svc('upstream'))['outside'])['ipv4_address']);
    expect(edge.config.edge.resolve['upstream.test']).toEqual([upstreamIp]);
    const profile = parseProfileText(read('config/profile.yaml'));
    expect(profile.ok).toBe(true);
    if (profile.ok) {
      const rule = profile.profile.rules.find((r) => r.fqdns.includes('upstream.test'));
      expect(rule?.action).toBe('allow');
      expect(rule?.allowPrivate.some((c) => cidrContains(c, upstreamIp))).toBe(true);
    }
    for (const { name, s } of ofApp('edge-proxy')) expect(Object.keys(networksOf(s)), name).toEqual(expect.arrayContaining(['front', 'outside']));
  });

  it('Redis, policy and audit sit only on the internal network (no route out)', () => {
    expect(obj(obj(compose['networks'])['back'])['internal']).toBe(true);
    for (const name of ['redis', ...ofApp('policy-service').map((e) => e.name), ...ofApp('audit-service').map((e) => e.name)]) {
      expect(Object.keys(networksOf(svc(name))), name).toEqual(['back']);
    }
  });

  it('`docker compose config` accepts it', (ctx) => {
    const cmd = composeCommand();
    if (!cmd) skipNote(ctx.skip, '`docker compose` / `docker-compose`');
    const [bin = '', ...pre] = cmd;
    const r = run(bin, [...pre, '-f', at('compose.yaml'), 'config', '-q']);
    if (r.out.trim()) console.warn(`note: ${cmd.join(' ')} config said:\n${r.out}`);
    expect(r.code, r.out).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
describe('docker/haproxy.cfg', () => {
  const cfg = read('haproxy.cfg')
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
  const section = (header: RegExp): string[] => {
    const start = cfg.findIndex((l) => header.test(l));
    if (start < 0) return [];
    const end = cfg.findIndex((l, i) => i > start && /^(global|defaults|frontend|backend|listen|resolvers)\b/.test(l));
    return cfg.slice(start + 1, end < 0 ? undefined : end);
  };

  it('balances TCP (mode tcp) from a frontend on 8443 and sends PROXY v2 to each of the 3 edges', () => {
    expect(section(/^defaults/)).toContain('mode tcp');
    const frontend = section(/^frontend portcullis_tls$/);
    expect(frontend).toContain('bind :8443');
    const backendName = frontend.find((l) => l.startsWith('default_backend'))?.split(/\s+/)[1] ?? '';
    const backend = section(new RegExp(`^backend ${backendName}$`));
    expect(backend.some((l) => l === 'mode http')).toBe(false);
    const defaults = backend.find((l) => l.startsWith('default-server')) ?? '';
    const edge = composeConfigs['edge-proxy'];
    const listenPort = portOf(edge.config.edge.listeners[0]?.listen ?? '');
    for (const { name } of ofApp('edge-proxy')) {
      const server = backend.find((l) => l.startsWith(`server ${name} `));
      expect(server, `server line for ${name}`).toBeDefined();
      expect(server).toContain(`${name}:${listenPort}`);
      expect(`${defaults} ${server}`, `${name} gets send-proxy-v2`).toMatch(/\bsend-proxy-v2\b/);
    }
    // health: HTTP /readyz on the edges' metrics port, not a PROXY-prefixed connect to the listener
    expect(defaults).toMatch(new RegExp(`\\bcheck port ${portOf(rawMetricsListen(edge))}\\b`));
    expect(backend).toContain('http-check send meth GET uri /readyz');
  });

  it('`haproxy -c` accepts it', (ctx) => {
    if (!has('haproxy')) skipNote(ctx.skip, 'haproxy');
    const r = run('haproxy', ['-c', '-f', at('haproxy.cfg')]);
    expect(r.out).toMatch(/Configuration file is valid/);
    expect(r.code).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
describe('docker/prometheus.yml', () => {
  const prom = obj(readYaml('prometheus.yml'));
  const jobs = arr(prom['scrape_configs']).map(obj);
  const targets = jobs.flatMap((j) => arr(j['static_configs']).flatMap((sc) => arr(obj(sc)['targets']).map(str)));

  it('scrapes every Portcullis service on its metrics port, and HAProxy', () => {
    for (const { name, app } of started) {
      if (app === 'cli') continue;
      expect(targets, name).toContain(`${name}:${portOf(rawMetricsListen(composeConfigs[app]))}`);
    }
    expect(targets).toContain('haproxy:8404');
    const scaled = jobs.flatMap((j) => arr(j['dns_sd_configs']).flatMap((d) => arr(obj(d)['names']).map(str)));
    expect(scaled).toContain('edge-scaled');
  });

  it('`promtool check config` accepts it', (ctx) => {
    if (!has('promtool')) skipNote(ctx.skip, 'promtool');
    const r = run('promtool', ['check', 'config', at('prometheus.yml')]);
    expect(r.out).toMatch(/SUCCESS/);
    expect(r.code).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
describe('docker/grafana', () => {
  const dashboard = obj(JSON.parse(read('grafana/dashboards/portcullis.json')));
  const panels = arr(dashboard['panels']).map(obj);
  const exprs = panels.flatMap((p) => arr(p['targets']).map((t) => str(obj(t)['expr'])));
  const datasources = arr(obj(readYaml('grafana/provisioning/datasources/portcullis.yaml'))['datasources']).map(obj);

  it('the dashboard charts every Portcullis metric', () => {
    for (const m of METRICS) expect(exprs.some((e) => new RegExp(`\\b${m}(_bucket|_sum|_count)?\\b`).test(e)), m).toBe(true);
    expect(exprs.some((e) => /histogram_quantile\(0\.5,.*portcullis_decide_duration_seconds_bucket/.test(e))).toBe(true);
    expect(exprs.some((e) => /histogram_quantile\(0\.99,.*portcullis_decide_duration_seconds_bucket/.test(e))).toBe(true);
    expect(exprs.some((e) => /portcullis_policy_version/.test(e) && /\bnode\b/.test(e))).toBe(true);
  });

  it('panels have unique ids, a place on the grid, and use the provisioned Prometheus datasource', () => {
    const ids = panels.map((p) => p['id']);
    expect(new Set(ids).size).toBe(ids.length);
    const prometheus = datasources.find((d) => d['type'] === 'prometheus');
    expect(prometheus).toBeDefined();
    expect(new URL(str(prometheus?.['url'])).host).toBe('prometheus:9090');
    for (const p of panels) {
      expect(obj(p['gridPos'])['w'], `panel ${str(p['title'])}`).toBeGreaterThan(0);
      if (p['type'] !== 'row') expect(obj(p['datasource'])['uid'], `panel ${str(p['title'])}`).toBe(prometheus?.['uid']);
    }
    expect(reachable(svc('grafana'), 'prometheus')).toEqual(['prometheus']);
  });

  it('the dashboard provider loads the directory compose mounts', () => {
    const providers = arr(obj(readYaml('grafana/provisioning/dashboards/portcullis.yaml'))['providers']).map(obj);
    expect(providers.map((p) => obj(p['options'])['path'])).toContain('/var/lib/grafana/dashboards');
    expect(str(obj(svc('grafana')['environment'])['GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH'])).toBe('/var/lib/grafana/dashboards/portcullis.json');
  });

  it('every dashboard query is valid PromQL (`promtool check rules`)', (ctx) => {
    if (!has('promtool')) skipNote(ctx.skip, 'promtool');
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-promql-'));
    try {
      const rules = exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: e.replaceAll('$__rate_interval', '1m') }));
      writeFileSync(join(dir, 'rules.yml'), stringify({ groups: [{ name: 'dashboard', rules }] }));
      const r = run('promtool', ['check', 'rules', join(dir, 'rules.yml')]);
      expect(r.out).toMatch(/SUCCESS/);
      expect(r.code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('docker/k8s (kustomize)', () => {
  let rendered: Obj[] | undefined;
  /** `kubectl kustomize docker/k8s`, run once; a render failure fails every test that needs it. */
  const docs = (): Obj[] => {
    if (!rendered) {
      const r = run('kubectl', ['kustomize', at('k8s')]);
      if (r.code !== 0) throw new Error(`kubectl kustomize docker/k8s failed:\n${r.out}`);
      rendered = parseAllDocuments(r.stdout).map((d) => obj(d.toJS()));
    }
    return rendered;
  };
  const kinds = (kind: string): Obj[] => docs().filter((d) => d['kind'] === kind);
  const named = (kind: string, name: string): Obj => obj(kinds(kind).find((d) => obj(d['metadata'])['name'] === name));
  const podSpec = (w: Obj): Obj => obj(obj(obj(w['spec'])['template'])['spec']);
  const podLabels = (w: Obj): Obj => obj(obj(obj(obj(w['spec'])['template'])['metadata'])['labels']);
  const containers = (w: Obj): Obj[] => arr(podSpec(w)['containers']).map(obj);
  const matches = (selector: Obj, labels: Obj): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);
  const workloads = (): Obj[] => [...kinds('Deployment'), ...kinds('StatefulSet')];
  const workload = (name: string): Obj => obj(workloads().find((w) => obj(w['metadata'])['name'] === name));
  const portNamed = (c: Obj, name: unknown): number => Number(typeof name === 'number' ? name : obj(arr(c['ports']).map(obj).find((p) => p['name'] === name))['containerPort']);

  const needKubectl = (skip: (note?: string) => never): void => {
    if (!has('kubectl')) skipNote(skip, 'kubectl');
  };

  it('renders a Namespace, the 3 services, Redis, ConfigMaps, an HPA, PDBs and NetworkPolicies', (ctx) => {
    needKubectl(ctx.skip);
    expect(kinds('Namespace').length).toBe(1);
    expect(kinds('Deployment').map((d) => obj(d['metadata'])['name'])).toEqual(expect.arrayContaining(['edge-proxy', 'policy-service']));
    expect(kinds('StatefulSet').map((d) => obj(d['metadata'])['name'])).toEqual(expect.arrayContaining(['audit-service', 'redis']));
    expect(kinds('ConfigMap').length).toBeGreaterThanOrEqual(4);
    expect(kinds('HorizontalPodAutoscaler').length).toBe(1);
    expect(kinds('PodDisruptionBudget').length).toBe(3);
    expect(kinds('NetworkPolicy').length).toBeGreaterThan(0);
    for (const d of docs()) if (d['kind'] !== 'Namespace') expect(obj(d['metadata'])['namespace'], `${str(d['kind'])} namespace`).toBe('portcullis');
  });

  it('every workload mounts a rendered ConfigMap whose config validates, and uses a tagged image', (ctx) => {
    needKubectl(ctx.skip);
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-k8s-'));
    try {
      for (const name of ['edge-proxy', 'policy-service', 'audit-service']) {
        const w = workload(name);
        const cmName = str(obj(arr(podSpec(w)['volumes']).map(obj).find((v) => v['name'] === 'config')?.['configMap'])['name']);
        const cm = named('ConfigMap', cmName);
        const text = str(obj(cm['data'])['portcullis.yaml']);
        expect(text, `${name}: ConfigMap ${cmName} holds portcullis.yaml`).not.toBe('');
        writeFileSync(join(dir, `${name}.yaml`), text);
        validateConfigFile(join(dir, `${name}.yaml`));
        for (const c of containers(w)) expect(str(c['image']), name).toMatch(new RegExp(`^portcullis/${name}:[\\w.-]+$`));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const profileCm = kinds('ConfigMap').find((c) => 'profile.yaml' in obj(c['data']));
    expect(profileCm, 'profile ConfigMap').toBeDefined();
    const r = parseProfileText(str(obj(profileCm?.['data'])['profile.yaml']));
    expect(r.ok ? [] : r.problems).toEqual([]);
  });

  it('probes: policy-service readiness is a native gRPC probe; edge and audit use /readyz and /healthz on the metrics port', (ctx) => {
    needKubectl(ctx.skip);
    const policy = containers(workload('policy-service'))[0] ?? {};
    expect(obj(obj(policy['readinessProbe'])['grpc'])['port']).toBe(portOf(k8sConfigs['policy-service'].config.policy.listen));
    expect(policy['livenessProbe']).toBeDefined();
    for (const name of ['edge-proxy', 'audit-service'] as const) {
      const c = containers(workload(name))[0] ?? {};
      const metricsPort = portOf(rawMetricsListen(k8sConfigs[name]));
      const ready = obj(obj(c['readinessProbe'])['httpGet']);
      const live = obj(obj(c['livenessProbe'])['httpGet']);
      expect(ready['path'], name).toBe('/readyz');
      expect(live['path'], name).toBe('/healthz');
      expect(portNamed(c, ready['port']), `${name} readiness port`).toBe(metricsPort);
      expect(portNamed(c, live['port']), `${name} liveness port`).toBe(metricsPort);
    }
    const edge = containers(workload('edge-proxy'))[0] ?? {};
    const edgePorts = arr(edge['ports']).map((p) => obj(p)['containerPort']);
    for (const l of k8sConfigs['edge-proxy'].config.edge.listeners) expect(edgePorts).toContain(portOf(l.listen));
  });

  it('config, profile and the directories the services write are mounted where the configs say', (ctx) => {
    needKubectl(ctx.skip);
    for (const name of ['edge-proxy', 'policy-service', 'audit-service'] as const) {
      const c = containers(workload(name))[0] ?? {};
      const mounts = arr(c['volumeMounts']).map(obj);
      const volumes = arr(podSpec(workload(name))['volumes']).map(obj);
      expect(mounts.some((m) => under('/etc/portcullis/portcullis.yaml', str(m['mountPath']))), `${name} config mount`).toBe(true);
      const writable = mounts.filter((m) => m['readOnly'] !== true).map((m) => str(m['mountPath']));
      for (const dir of writableDirs(name, k8sConfigs[name])) {
        expect(dir, `${name}: ${dir} must be absolute`).toMatch(/^\//);
        expect(writable.some((m) => under(dir, m)), `${name}: ${dir} on a writable volume`).toBe(true);
      }
      if (name === 'policy-service') {
        const profile = k8sConfigs[name].config.policy.profile ?? '';
        const m = mounts.find((x) => under(profile, str(x['mountPath'])) && !x['subPath']);
        expect(m, `a mount holding ${profile}`).toBeDefined();
        const cm = named('ConfigMap', str(obj(volumes.find((v) => v['name'] === m?.['name'])?.['configMap'])['name']));
        expect(Object.keys(obj(cm['data']))).toContain(profile.slice(str(m?.['mountPath']).length + 1));
      }
    }
  });

  it('every container runs non-root with a read-only root filesystem and no privilege escalation', (ctx) => {
    needKubectl(ctx.skip);
    for (const w of workloads()) {
      const pod = obj(podSpec(w)['securityContext']);
      for (const c of containers(w)) {
        const sc = obj(c['securityContext']);
        const who = `${str(obj(w['metadata'])['name'])}/${str(c['name'])}`;
        expect(sc['runAsNonRoot'] ?? pod['runAsNonRoot'], who).toBe(true);
        expect(sc['readOnlyRootFilesystem'], who).toBe(true);
        expect(sc['allowPrivilegeEscalation'], who).toBe(false);
        expect(arr(obj(sc['capabilities'])['drop']), who).toContain('ALL');
      }
    }
  });

  it('the HPA scales the edge Deployment on CPU; the PDBs and Services select real pods', (ctx) => {
    needKubectl(ctx.skip);
    const hpa = kinds('HorizontalPodAutoscaler')[0] ?? {};
    const spec = obj(hpa['spec']);
    expect(obj(spec['scaleTargetRef'])).toMatchObject({ kind: 'Deployment', name: 'edge-proxy' });
    expect(arr(spec['metrics']).map((m) => obj(obj(m)['resource'])['name'])).toContain('cpu');
    expect(Number(spec['minReplicas'])).toBeGreaterThanOrEqual(2);
    expect(obj(workload('edge-proxy')['spec'])['replicas'], 'the HPA owns replicas').toBeUndefined();
    const c = containers(workload('edge-proxy'))[0] ?? {};
    expect(obj(obj(c['resources'])['requests'])['cpu'], 'CPU request (the HPA needs it)').toBeDefined();
    for (const name of ['edge-proxy', 'policy-service', 'audit-service']) {
      const pdb = kinds('PodDisruptionBudget').find((p) => matches(obj(obj(obj(p['spec'])['selector'])['matchLabels']), podLabels(workload(name))));
      expect(pdb, `PDB for ${name}`).toBeDefined();
    }
    for (const s of kinds('Service')) {
      const selector = obj(obj(s['spec'])['selector']);
      expect(
        workloads().some((w) => matches(selector, podLabels(w))),
        `Service ${str(obj(s['metadata'])['name'])}`,
      ).toBe(true);
    }
    // the names the configs dial are Services
    const serviceNames = kinds('Service').map((s) => obj(s['metadata'])['name']);
    expect(serviceNames).toContain(splitHostPort(k8sConfigs['edge-proxy'].config.edge.policyService).host);
    expect(serviceNames).toContain(new URL(k8sConfigs['edge-proxy'].config.redis.url ?? '').hostname);
  });

  it('NetworkPolicies: default-deny egress; the edge reaches the internet (not private ranges or metadata), policy and redis; policy and audit reach only redis and DNS', (ctx) => {
    needKubectl(ctx.skip);
    const policies = kinds('NetworkPolicy').map((p) => obj(p['spec']));
    const denyAll = policies.find((p) => Object.keys(obj(p['podSelector'])).length === 0 && arr(p['policyTypes']).includes('Egress') && arr(p['egress']).length === 0);
    expect(denyAll, 'a default-deny egress policy').toBeDefined();

    const selects = (p: Obj, labels: Obj): boolean => {
      const sel = obj(p['podSelector']);
      const exprs = arr(sel['matchExpressions']).map(obj);
      return matches(obj(sel['matchLabels']), labels) && exprs.every((e) => e['operator'] === 'In' && arr(e['values']).includes(labels[str(e['key'])]));
    };
    const egressPeers = (name: string): Obj[] =>
      policies.filter((p) => selects(p, podLabels(workload(name)))).flatMap((p) => arr(p['egress']).flatMap((r) => arr(obj(r)['to']).map(obj)));
    const isDns = (peer: Obj): boolean => matches({ 'k8s-app': 'kube-dns' }, obj(obj(peer['podSelector'])['matchLabels']));
    const peerIs = (peer: Obj, name: string): boolean => {
      const sel = obj(obj(peer['podSelector'])['matchLabels']);
      return Object.keys(sel).length > 0 && !peer['namespaceSelector'] && matches(sel, podLabels(workload(name)));
    };

    for (const name of ['policy-service', 'audit-service']) {
      const peers = egressPeers(name);
      expect(peers.length).toBeGreaterThan(0);
      for (const peer of peers) expect(isDns(peer) || peerIs(peer, 'redis'), `${name} egress to ${JSON.stringify(peer)}`).toBe(true);
      expect(peers.some((p) => peerIs(p, 'redis'))).toBe(true);
    }

    const edge = egressPeers('edge-proxy');
    expect(edge.some((p) => peerIs(p, 'policy-service'))).toBe(true);
    expect(edge.some((p) => peerIs(p, 'redis'))).toBe(true);
    const internet = edge.map((p) => obj(p['ipBlock'])).find((b) => b['cidr'] === '0.0.0.0/0');
    expect(internet, 'edge egress to 0.0.0.0/0').toBeDefined();
    const except = arr(internet?.['except']).map(str);
    for (const blocked of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']) expect(except).toContain(blocked);
    expect(except.some((c) => cidrContains(c, '169.254.169.254')), 'cloud metadata blocked').toBe(true);
    for (const b of edge.map((p) => obj(p['ipBlock'])).filter((x) => x['cidr'])) {
      if (b['cidr'] !== '0.0.0.0/0') expect(str(b['cidr'])).toBe('::/0');
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('docker/README.md', () => {
  it('says how to start it, where the dashboards are, how to scale and how to use an L4 load balancer', () => {
    const text = read('README.md');
    for (const s of ['docker compose', '3000', '16686', '9090', '--scale', 'PROXY', 'send-proxy-v2', 'kubectl apply -k']) expect(text, s).toContain(s);
  });
});
