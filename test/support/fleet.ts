// A Portcullis fleet on one machine, shared by the fleet e2e test and the fleet-propagation bench:
// one redis-server, 2 policy-service replicas, 2 audit-service instances and 3 edge-proxy nodes,
// every one a separate process with its own YAML config, plus a TLS upstream on loopback.
//
// Also the propagation measurement: apply a profile through ONE policy replica that flips a name
// the edges have in their L1 cache, and time, per edge, until that edge enforces the new verdict
// (probing with a captured ClientHello over raw TCP: ServerHello = relayed, access_denied = refused).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { connect as netConnect, createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { freePort, makeCerts, startRedis, startTlsUpstream, waitFor } from '@portcullis/testing';
import type { TestCerts, TestRedis, TlsUpstream } from '@portcullis/testing';
import { admin, adminClient, decide, decisionClient } from './grpc';
import { captureHello } from './hello';
import { startApp, waitForOutput, writeConfig } from './processes';
import type { Proc } from './processes';

export const TOKEN = 'fleet-admin-token-1';
export const DOMAIN = 'fleet.test';
/** always allowed: the steady load */
export const STEADY = `steady.${DOMAIN}`;
/** flipped between allow and deny by the propagation rounds */
export const FLIP = `flip.${DOMAIN}`;
/** allowed names no edge has asked for yet (cold L1), for probing decisions that need the policy service */
export const fresh = (i: number): string => `fresh${i}.${DOMAIN}`;
export const FRESH_NAMES = 200;

/** The fleet's profile; `flip` is the action of the rule for FLIP (evaluated before the allow-all of the domain). */
export function fleetProfile(flip: 'allow' | 'deny', comment = ''): string {
  return `# ${comment}
apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: fleet
mode: enforce
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: flip
    action: ${flip}
    fqdns: ["${FLIP}"]
    allowPrivate: ["127.0.0.0/8"] # the upstream is on loopback
  - id: fleet
    action: allow
    fqdns: [".${DOMAIN}"]
    allowPrivate: ["127.0.0.0/8"]
`;
}

export type Kind = 'policy' | 'audit' | 'edge';

export interface Member {
  kind: Kind;
  /** policy-a, audit-b, edge-1... (edges: also the nodeId) */
  name: string;
  configPath: string;
  /** gRPC port (policy) or TLS listener port (edge); 0 for audit */
  port: number;
  /** HOST:PORT of the gRPC server (policy) */
  address: string;
  /** edges: the metrics port (/metrics) */
  metricsPort: number;
  /** edges: index into fleet.policies of the replica this edge asks */
  policyIndex: number;
  proc: Proc;
  alive(): boolean;
  /** SIGKILL: the process vanishes with no goodbye */
  kill(): Promise<void>;
  /** starts the process again with the same config (same ports), waits until it is ready */
  restart(): Promise<void>;
}

export interface FleetOptions {
  edges?: number;
  /** edge i asks policies[edgePolicy[i]] (default: edges 1, 3 → A; edge 2 → B) */
  edgePolicy?: number[];
  /** edge i's edge.policyService (default: the address of policies[edgePolicy[i]]) */
  policyService?: (edgeIndex: number, policies: Member[]) => string;
  /** extra keys for every edge's `edge` section */
  edge?: Record<string, unknown>;
  /** extra keys for every policy replica's `policy` section */
  policy?: Record<string, unknown>;
  /** extra keys for every audit instance's `audit` section */
  audit?: Record<string, unknown>;
  /** log.level of every service (default info: the tests read the logs) */
  logLevel?: string;
}

export interface Fleet {
  dir: string;
  redis: TestRedis;
  certs: TestCerts;
  upstream: TlsUpstream;
  auditLog: string;
  policies: Member[];
  audits: Member[];
  edges: Member[];
  /** admin calls through replica i */
  admin(i?: number): ReturnType<typeof admin>;
  /** every process's output, for failure messages */
  logs(): string;
  stop(): Promise<void>;
  /** last resort (process exit): SIGKILL every service process, synchronously */
  killSync(): void;
}

function member(kind: Kind, name: string, app: 'policy-service' | 'audit-service' | 'edge-proxy', configPath: string, ready: string, fields: Partial<Member>): Member {
  const m: Member = {
    kind,
    name,
    configPath,
    port: 0,
    address: '',
    metricsPort: 0,
    policyIndex: -1,
    ...fields,
    proc: startApp(app, ['--config', configPath]),
    alive: () => m.proc.child.exitCode === null && m.proc.child.signalCode === null,
    kill: () => m.proc.kill(),
    restart: async () => {
      if (m.alive()) await m.proc.stop();
      m.proc = startApp(app, ['--config', configPath]);
      m.proc.name = name;
      await waitForOutput(m.proc, ready, 20_000);
    },
  };
  m.proc.name = name;
  return m;
}

/** where FLIP resolves to: a cheap stand-in upstream (see startFlipUpstream) */
const FLIP_ADDRESS = '127.0.0.2';

/**
 * The propagation probes only need to see whether the edge relayed FLIP, not a whole handshake:
 * FLIP resolves to this server on 127.0.0.2 (same port as the TLS upstream), which answers the
 * relayed ClientHello with the header of a handshake record and closes. So probing costs no TLS
 * handshake in this (the measuring) process. Undefined (FLIP goes to the real upstream) if the
 * address cannot be bound.
 */
function startFlipUpstream(port: number): Promise<Server | undefined> {
  const server = createServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => s.end(Buffer.from([0x16, 0x03, 0x03, 0x00, 0x00])));
  });
  return new Promise((resolve) => {
    server.once('error', () => resolve(undefined));
    server.listen(port, FLIP_ADDRESS, () => resolve(server));
  });
}

const READY: Record<Kind, string> = { policy: 'policy-service listening', audit: 'audit-service consuming', edge: 'edge listening' };

export async function startFleet(opts: FleetOptions = {}): Promise<Fleet> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-fleet-'));
  const redis = await startRedis();
  const certs = makeCerts([STEADY, `*.${DOMAIN}`]);
  const upstream = await startTlsUpstream(certs);
  const flipServer = await startFlipUpstream(upstream.port);
  const auditLog = join(dir, 'audit.log');
  writeFileSync(join(dir, 'profile.yaml'), fleetProfile('allow', 'bootstrap'));
  const log = { level: opts.logLevel ?? 'info' };
  const members: Member[] = [];
  const fleet: Partial<Fleet> = {};
  try {
    const policies: Member[] = [];
    for (const n of ['a', 'b']) {
      const port = await freePort();
      const cfg = writeConfig(dir, `policy-${n}.yaml`, {
        redis: { url: redis.url },
        policy: { listen: `127.0.0.1:${port}`, profile: join(dir, 'profile.yaml'), adminToken: TOKEN, ...opts.policy },
        log,
      });
      const m = member('policy', `policy-${n}`, 'policy-service', cfg, READY.policy, { port, address: `127.0.0.1:${port}` });
      policies.push(m);
      members.push(m);
    }
    for (const p of policies) await waitForOutput(p.proc, READY.policy, 20_000);

    const audits: Member[] = [];
    for (const n of ['a', 'b']) {
      const cfg = writeConfig(dir, `audit-${n}.yaml`, {
        redis: { url: redis.url },
        audit: { log: auditLog, consumer: `audit-${n}`, claimIdleMs: 1_000, batchSize: 200, rotateDaily: false, ...opts.audit },
        log,
      });
      const m = member('audit', `audit-${n}`, 'audit-service', cfg, READY.audit, {});
      audits.push(m);
      members.push(m);
    }

    const resolve: Record<string, string[]> = { [STEADY]: ['127.0.0.1'], [FLIP]: [flipServer ? FLIP_ADDRESS : '127.0.0.1'] };
    for (let i = 0; i < FRESH_NAMES; i++) resolve[fresh(i)] = ['127.0.0.1'];
    const edgePolicy = opts.edgePolicy ?? [0, 1, 0];
    const edges: Member[] = [];
    for (let i = 0; i < (opts.edges ?? 3); i++) {
      const nodeId = `edge-${i + 1}`;
      const [port, metricsPort] = [await freePort(), await freePort()];
      const policyIndex = edgePolicy[i % edgePolicy.length] ?? 0;
      const cfg = writeConfig(dir, `${nodeId}.yaml`, {
        redis: { url: redis.url },
        edge: {
          nodeId,
          policyService: opts.policyService ? opts.policyService(i, policies) : policies[policyIndex]?.address,
          listeners: [{ name: 'tls', mode: 'sni', listen: `127.0.0.1:${port}`, upstreamPort: upstream.port }],
          resolve,
          sniffTimeoutMs: 2_000,
          drainTimeoutMs: 500,
          spoolDir: join(dir, 'spool'),
          ...opts.edge,
        },
        metrics: { listen: `127.0.0.1:${metricsPort}` },
        log,
      });
      const m = member('edge', nodeId, 'edge-proxy', cfg, READY.edge, { port, metricsPort, policyIndex });
      edges.push(m);
      members.push(m);
    }
    for (const m of [...audits, ...edges]) await waitForOutput(m.proc, READY[m.kind], 20_000);
    // an edge is ready to enforce once it learned the policy version (WatchPolicy)
    for (const e of edges) await waitForOutput(e.proc, 'policy.version', 10_000);

    Object.assign(fleet, { dir, redis, certs, upstream, auditLog, policies, audits, edges });
  } catch (err) {
    for (const m of members.reverse()) await m.proc.stop(2_000);
    flipServer?.close();
    await upstream.close();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const f = fleet as Fleet;
  const admins = new Map<number, ReturnType<typeof admin>>();
  const clients: { close(): void }[] = [];
  f.admin = (i = 0) => {
    let a = admins.get(i);
    if (!a) {
      const c = adminClient(f.policies[i]?.address ?? '');
      clients.push(c);
      a = admin(c, TOKEN);
      admins.set(i, a);
    }
    return a;
  };
  f.logs = () => [...f.policies, ...f.audits, ...f.edges].map((m) => `----- ${m.name}${m.alive() ? '' : ' (dead)'}\n${m.proc.output.join('').slice(-4_000)}`).join('\n');
  f.killSync = () => {
    for (const m of [...f.edges, ...f.audits, ...f.policies]) if (m.alive()) m.proc.child.kill('SIGKILL');
  };
  f.stop = async () => {
    for (const c of clients) c.close();
    // edges first (their last events), then audit (to write them), then policy
    for (const m of [...f.edges, ...f.audits, ...f.policies]) await m.proc.stop(3_000);
    flipServer?.close();
    await upstream.close();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(f.certs.dir, { recursive: true, force: true });
  };
  return f;
}

// ---------------------------------------------------------------------------------------------
// Clients

export type ProbeResult = 'allow' | 'deny' | 'error';

const hellos = new Map<string, Promise<Buffer>>();
/** A real ClientHello for `name` (from Node's TLS client), captured once. */
export function helloFor(name: string): Promise<Buffer> {
  let h = hellos.get(name);
  if (!h) {
    h = captureHello(name);
    hellos.set(name, h);
  }
  return h;
}

/**
 * One cheap probe of an edge's verdict for `name`: a TCP connection that sends a captured
 * ClientHello and reads the first bytes back. A handshake record (22) is the upstream's
 * ServerHello, relayed: allowed. The alert access_denied (21 … 49) is a refusal. Anything else
 * (another alert, a close, a timeout) is an error.
 */
export async function probe(port: number, name: string, timeoutMs = 2_000): Promise<ProbeResult> {
  const hello = await helloFor(name);
  return new Promise((resolve) => {
    const s = netConnect({ port, host: '127.0.0.1' });
    let got = Buffer.alloc(0);
    const done = (r: ProbeResult): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done('error'), timeoutMs);
    s.setNoDelay(true);
    s.on('connect', () => s.write(hello));
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got[0] === 0x16) return done('allow');
      if (got[0] === 0x15 && got.length >= 7) return done(got[6] === 0x31 ? 'deny' : 'error');
      if (got[0] !== 0x15) done('error');
    });
    s.on('error', () => done('error'));
    s.on('close', () => done('error'));
  });
}

export interface FlowResult {
  ok: boolean;
  body: string;
  /** the client's address as the edge saw it (the audit record's `src`) */
  src: string;
  errorCode?: string;
  /** when the client saw the end of the response (Date.now()) */
  at: number;
}

/** A full TLS session through an edge with Node's tls, reading the upstream's reply to EOF. */
export function tlsFlow(port: number, servername: string, ca: Buffer, timeoutMs = 3_000): Promise<FlowResult> {
  return new Promise((resolve) => {
    const raw = netConnect({ port, host: '127.0.0.1' });
    let src = '';
    let body = '';
    let settled = false;
    const finish = (ok: boolean, errorCode?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      raw.destroy();
      resolve({ ok, body, src, at: Date.now(), ...(errorCode ? { errorCode } : {}) });
    };
    const timer = setTimeout(() => finish(false, 'TIMEOUT'), timeoutMs);
    raw.on('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
    raw.on('connect', () => {
      src = `${raw.localAddress}:${raw.localPort}`;
      const t = tlsConnect({ socket: raw, servername, ca });
      t.setEncoding('utf8');
      t.on('data', (d: string) => (body += d));
      t.on('end', () => {
        t.end();
        finish(body.length > 0);
      });
      t.on('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
    });
  });
}

function metricsText(edge: Member): Promise<string> {
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port: edge.metricsPort, path: '/metrics' }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve(text));
    }).on('error', reject);
  });
}

/** The edge's L1 hit counter (portcullis_l1_cache_total{result="hit"}) from its /metrics. */
export async function l1Hits(edge: Member): Promise<number> {
  const m = /^portcullis_l1_cache_total\{[^}]*result="hit"[^}]*\} (\d+)/m.exec(await metricsText(edge));
  return m ? Number(m[1]) : 0;
}

/**
 * The L1 hit counter with every probe made so far counted: a flow the relay's express lane took
 * (libs/edge express.ts) is counted when its report reaches JavaScript, within REPORTS_WITHIN_MS
 * (20 ms) of the connection on an idle edge. Read until it holds still for 30 ms (at most 1 s).
 */
export async function l1HitsSettled(edge: Member): Promise<number> {
  let n = await l1Hits(edge);
  for (const until = Date.now() + 1_000; Date.now() < until; ) {
    await new Promise((r) => setTimeout(r, 30));
    const again = await l1Hits(edge);
    if (again === n) return n;
    n = again;
  }
  return n;
}

/** The L1 hit counter once it has counted a probe made after it read `before` (gives up waiting after 500 ms). */
export async function l1HitsAfter(edge: Member, before: number): Promise<number> {
  let n = await l1Hits(edge);
  for (const until = Date.now() + 500; n <= before && Date.now() < until; n = await l1Hits(edge)) await new Promise((r) => setTimeout(r, 10));
  return n;
}

/** The policy version the edge enforces (portcullis_policy_version from its /metrics). */
export async function edgePolicyVersion(edge: Member): Promise<number> {
  const m = /^portcullis_policy_version\{[^}]*\} (\d+)/m.exec(await metricsText(edge));
  return m ? Number(m[1]) : 0;
}

/**
 * Puts `name` with its current verdict into the edge's L1: waits until the edge enforces policy
 * `version`, probes once (a miss, cached), then once more, which must be an L1 hit.
 */
export async function warmL1(edge: Member, name: string, version: number, timeoutMs = 3_000): Promise<ProbeResult> {
  await waitFor(async () => (await edgePolicyVersion(edge)) >= version, timeoutMs, 10);
  const first = await probe(edge.port, name);
  const before = await l1HitsSettled(edge);
  const again = await probe(edge.port, name);
  if (again !== first || (await l1HitsAfter(edge, before)) !== before + 1) throw new Error(`${edge.name}: ${name} did not become an L1 hit (${first}, then ${again})`);
  return again;
}

// ---------------------------------------------------------------------------------------------
// Propagation

export interface EdgeSwitch {
  edge: string;
  /** ms from the apply call's return until the first probe that saw the new verdict completed (can be < 0) */
  fromReturnMs: number;
  /** ms from the apply call's start */
  fromStartMs: number;
  probes: number;
}

export interface PropagationRound {
  round: number;
  /** the verdict FLIP gets after the apply */
  to: 'allow' | 'deny';
  version: number;
  /** duration of the ApplyPolicy call */
  applyMs: number;
  /** the warm-up probe right before the apply was an L1 hit on every edge (so the switch is an invalidation) */
  warmL1Hit: boolean;
  edges: EdgeSwitch[];
}

export interface Percentiles {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles. */
export function percentiles(xs: number[]): Percentiles {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
  return { n: s.length, p50: at(50), p99: at(99), max: s[s.length - 1] ?? NaN };
}

export interface PropagationResult {
  rounds: PropagationRound[];
  /** fromReturnMs over every round and edge */
  overall: Percentiles;
  /** per round, the slowest edge's fromReturnMs: apply → every edge enforcing */
  allEdges: Percentiles;
  overallFromStart: Percentiles;
  /** only the rounds that newly deny the name */
  denyRounds: Percentiles;
  perEdge: Record<string, Percentiles>;
}

export interface PropagationOptions {
  rounds: number;
  /** the policy replica the profiles are applied through */
  via?: number;
  /** pause between probes of one edge while waiting for the switch */
  intervalMs?: number;
  /** give up on an edge after this long (its sample is then Infinity) */
  timeoutMs?: number;
  /** log each round */
  log?: (line: string) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What FLIP currently gets (from the active profile). */
async function currentFlip(fleet: Fleet, via: number): Promise<'allow' | 'deny'> {
  const doc = await fleet.admin(via).get({});
  return /id: flip\n\s+action: deny/.test(doc.content) ? 'deny' : 'allow';
}

/**
 * `rounds` applies alternating FLIP between deny and allow (starting with whatever newly denies
 * it, if it is allowed now). Before each apply every edge is warmed: probed until it gives the
 * current verdict, then once more, checked to be an L1 hit. Then the apply runs while every edge is
 * probed each `intervalMs` until it gives the new verdict.
 */
export async function measurePropagation(fleet: Fleet, opts: PropagationOptions): Promise<PropagationResult> {
  const via = opts.via ?? 0;
  const interval = opts.intervalMs ?? 10;
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const edges = fleet.edges.filter((e) => e.alive());
  let state = await currentFlip(fleet, via);
  const rounds: PropagationRound[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    // warm every edge's L1 with the current verdict for FLIP
    let warmL1Hit = true;
    for (const e of edges) {
      await waitFor(async () => (await probe(e.port, FLIP)) === state, 5_000, 20).catch(() => {
        throw new Error(`${e.name} does not give ${FLIP} the current verdict (${state}) before round ${r + 1}\n${fleet.logs()}`);
      });
      const before = await l1HitsSettled(e);
      const again = await probe(e.port, FLIP);
      const after = await l1HitsAfter(e, before);
      if (again !== state || after !== before + 1) warmL1Hit = false;
    }
    const to = state === 'allow' ? 'deny' : 'allow';
    const t0 = performance.now();
    let tReturn = NaN;
    let stopAt = Infinity;
    const applied = fleet
      .admin(via)
      .apply({ content: fleetProfile(to, `round ${r + 1}: ${FLIP} → ${to}`), author: 'fleet-propagation', comment: `round ${r + 1}` })
      .then((res) => {
        tReturn = performance.now();
        return res;
      });
    applied.catch(() => (stopAt = 0)); // a failed apply ends the probing at once
    const switches = edges.map(async (e): Promise<EdgeSwitch> => {
      let probes = 0;
      for (;;) {
        const res = await probe(e.port, FLIP);
        probes++;
        const t = performance.now();
        if (res === to) return { edge: e.name, fromReturnMs: NaN, fromStartMs: t - t0, probes };
        if (t - t0 > Math.min(timeoutMs, stopAt)) return { edge: e.name, fromReturnMs: Infinity, fromStartMs: Infinity, probes };
        await sleep(interval);
      }
    });
    const res = await applied;
    if (!res.applied) throw new Error(`apply refused: ${JSON.stringify(res.problems)}`);
    const done = await Promise.all(switches);
    for (const d of done) d.fromReturnMs = d.fromStartMs === Infinity ? Infinity : d.fromStartMs - (tReturn - t0);
    const round: PropagationRound = { round: r + 1, to, version: res.version, applyMs: tReturn - t0, warmL1Hit, edges: done };
    rounds.push(round);
    opts.log?.(`round ${r + 1} → ${to} v${res.version} apply ${round.applyMs.toFixed(1)} ms; ${done.map((d) => `${d.edge} ${d.fromReturnMs.toFixed(1)} ms (${d.probes} probes)`).join(', ')}${warmL1Hit ? '' : ' [warm probe was not an L1 hit]'}`);
    state = to;
  }
  const all = rounds.flatMap((r) => r.edges);
  const perEdge: Record<string, Percentiles> = {};
  for (const e of edges) perEdge[e.name] = percentiles(all.filter((s) => s.edge === e.name).map((s) => s.fromReturnMs));
  return {
    rounds,
    overall: percentiles(all.map((s) => s.fromReturnMs)),
    allEdges: percentiles(rounds.map((r) => Math.max(...r.edges.map((s) => s.fromReturnMs)))),
    overallFromStart: percentiles(all.map((s) => s.fromStartMs)),
    denyRounds: percentiles(rounds.filter((r) => r.to === 'deny').flatMap((r) => r.edges.map((s) => s.fromReturnMs))),
    perEdge,
  };
}

/**
 * The floor to compare with: one process's own round trip, ApplyPolicy on a replica and then a
 * Decide for FLIP on the same replica until it answers with the new verdict (ms from the apply's
 * start). Leaves FLIP as it found it after an even number of rounds.
 */
export async function measureApplyDecide(fleet: Fleet, rounds: number, via = 0): Promise<number[]> {
  const client = decisionClient(fleet.policies[via]?.address ?? '');
  try {
    let state = await currentFlip(fleet, via);
    const out: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const to = state === 'allow' ? 'deny' : 'allow';
      const t0 = performance.now();
      const res = await fleet.admin(via).apply({ content: fleetProfile(to, `baseline ${r + 1}`), author: 'fleet-baseline' });
      if (!res.applied) throw new Error('baseline apply refused');
      for (;;) {
        const d = await decide(client, { sni: FLIP, port: 443, source_ip: '127.0.0.1', protocol: 'tls', node_id: 'baseline', listener: 'tls' });
        if ((d.verdict === 'VERDICT_ALLOW' ? 'allow' : 'deny') === to) break;
        if (performance.now() - t0 > 5_000) throw new Error('baseline: the replica did not answer with its own new version');
      }
      out.push(performance.now() - t0);
      state = to;
    }
    return out;
  } finally {
    client.close();
  }
}

export function fmtMs(p: Percentiles): string {
  return `p50 ${p.p50.toFixed(1)} ms, p99 ${p.p99.toFixed(1)} ms, max ${p.max.toFixed(1)} ms (n=${p.n})`;
}
