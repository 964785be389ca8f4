// Portcullis as separate processes on a real Redis, for fault injection and soak runs: members
// that can be killed, paused and restarted on the same ports, Prometheus scrapes, and a TLS
// client whose flows can be found again in the audit log (by node and source port).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { freePort, waitFor } from '@portcullis/testing';
import type { TestRedis } from '@portcullis/testing';
import type { AuditLine } from '../../support/audit-log';
import { startApp, waitForOutput, writeConfig } from '../../support/processes';
import type { Proc } from '../../support/processes';

export type App = 'edge-proxy' | 'policy-service' | 'audit-service';

/** startApp, under `prlimit --nofile=N:N` when `nofile` is given. */
function launch(app: App, args: string[], nofile?: number): Proc {
  return startApp(app, args, {}, nofile ? { nofile } : {});
}

/** One service process that can be stopped, killed, paused and started again with the same config. */
export class Member {
  proc: Proc;
  /** output of earlier incarnations (the current one is in proc.output) */
  readonly history: string[] = [];

  constructor(
    readonly name: string,
    readonly app: App,
    readonly config: string,
    private readonly readyText: string,
    readonly metricsPort?: number,
    /** open-files limit of the process (prlimit), when not inherited */
    readonly nofile?: number,
  ) {
    this.proc = launch(app, ['--config', config], nofile);
  }

  get pid(): number {
    return this.proc.child.pid ?? 0;
  }

  alive(): boolean {
    return this.proc.child.exitCode === null && this.proc.child.signalCode === null;
  }

  ready(timeoutMs = 15_000): Promise<void> {
    return waitForOutput(this.proc, this.readyText, timeoutMs);
  }

  /** Everything this member printed, all incarnations. */
  log(): string {
    return this.history.join('') + this.proc.output.join('');
  }

  /** pino lines whose msg is `msg` */
  lines(msg: string): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.log().split('\n')) {
      if (!line.includes(msg)) continue;
      try {
        const o = JSON.parse(line) as Record<string, unknown>;
        if (o['msg'] === msg) out.push(o);
      } catch {
        // not a JSON line
      }
    }
    return out;
  }

  kill(): Promise<void> {
    return this.proc.kill();
  }

  stop(graceMs?: number): Promise<number | null> {
    return this.proc.stop(graceMs);
  }

  pause(): void {
    this.proc.child.kill('SIGSTOP');
  }

  resume(): void {
    this.proc.child.kill('SIGCONT');
  }

  async restart(): Promise<void> {
    if (this.alive()) await this.proc.stop();
    this.history.push(this.proc.output.join(''));
    this.proc = launch(this.app, ['--config', this.config], this.nofile);
    await this.ready();
  }
}

export interface ProcStackOptions {
  redis: TestRedis;
  profile: string;
  policy?: Record<string, unknown>;
  /** one edge per entry: its nodeId and edge keys (listeners are made here: one sni listener `tls`) */
  edges: { nodeId: string; upstreamPort: number; edge?: Record<string, unknown>; extraListeners?: Record<string, unknown>[]; metrics?: boolean; nofile?: number }[];
  /** one audit-service per entry (its audit keys); [] for none */
  audits?: Record<string, unknown>[];
  auditMetrics?: boolean;
  resolve: Record<string, string[]>;
}

export interface ProcStack {
  dir: string;
  auditLog: string;
  policyAddress: string;
  policy: Member;
  edges: (Member & { port: number; nodeId: string })[];
  audits: Member[];
  stop(): Promise<void>;
}

export async function startProcStack(o: ProcStackOptions): Promise<ProcStack> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-procs-'));
  const auditLog = join(dir, 'audit.log');
  writeFileSync(join(dir, 'profile.yaml'), o.profile);
  const policyPort = await freePort();
  const base = { redis: { url: o.redis.url }, log: { level: 'info' } };
  const policyConfig = writeConfig(dir, 'policy.yaml', { ...base, policy: { listen: `127.0.0.1:${policyPort}`, profile: join(dir, 'profile.yaml'), adminToken: 'faults-token-1', ...o.policy } });
  const policy = new Member('policy', 'policy-service', policyConfig, 'policy-service listening');
  const members: Member[] = [policy];
  const stop = async (): Promise<void> => {
    for (const m of members.reverse()) {
      m.resume();
      await m.stop(3_000);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await policy.ready();
    const audits: Member[] = [];
    for (const [i, a] of (o.audits ?? [{}]).entries()) {
      const metricsPort = o.auditMetrics ? await freePort() : undefined;
      const config = writeConfig(dir, `audit-${i}.yaml`, { ...base, audit: { log: auditLog, consumer: `audit-${i}`, ...a }, ...(metricsPort ? { metrics: { listen: `127.0.0.1:${metricsPort}` } } : {}) });
      const m = new Member(`audit-${i}`, 'audit-service', config, 'audit-service consuming', metricsPort);
      members.push(m);
      audits.push(m);
    }
    const edges: ProcStack['edges'] = [];
    for (const e of o.edges) {
      const port = await freePort();
      const metricsPort = e.metrics ? await freePort() : undefined;
      const config = writeConfig(dir, `${e.nodeId}.yaml`, {
        ...base,
        edge: { nodeId: e.nodeId, policyService: `127.0.0.1:${policyPort}`, listeners: [{ name: 'tls', mode: 'sni', listen: `127.0.0.1:${port}`, upstreamPort: e.upstreamPort }, ...(e.extraListeners ?? [])], resolve: o.resolve, spoolDir: join(dir, 'spool'), drainTimeoutMs: 2_000, ...e.edge },
        ...(metricsPort ? { metrics: { listen: `127.0.0.1:${metricsPort}` } } : {}),
      });
      const m = Object.assign(new Member(e.nodeId, 'edge-proxy', config, 'edge listening', metricsPort, e.nofile), { port, nodeId: e.nodeId });
      members.push(m);
      edges.push(m);
    }
    for (const m of [...audits, ...edges]) await m.ready();
    // a worker-mode edge logs "edge listening" per worker; its primary says when all are
    for (const [i, e] of o.edges.entries()) if (Number(e.edge?.['workers'] ?? 1) > 1) await waitForOutput((edges[i] as Member).proc, 'edge workers listening');
    return { dir, auditLog, policyAddress: `127.0.0.1:${policyPort}`, policy, edges, audits, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---- metrics ---------------------------------------------------------------------------

/** samples of one scrape: metric name (histograms: name_bucket, name_count, name_sum) → label sets and values */
export type Scrape = Map<string, { labels: Record<string, string>; value: number }[]>;

/**
 * GET over fetch's pooled keep-alive connections. A connection idle about as long as the server's
 * keep-alive timeout (5 s) can be closed by the server just as a request goes out on it: undici
 * says UND_ERR_SOCKET, or ECONNRESET when the server's reset comes first (each seen once in CI,
 * after waits of over 5 s between scrapes); one retry, on a fresh connection, as a scraper's next
 * interval would.
 */
const STALE_CONNECTION = new Set(['UND_ERR_SOCKET', 'ECONNRESET']);

async function getText(url: string): Promise<string> {
  try {
    return await (await fetch(url)).text();
  } catch (err) {
    if (!STALE_CONNECTION.has((err as { cause?: { code?: string } }).cause?.code ?? '')) throw err;
    return (await fetch(url)).text();
  }
}

export async function scrape(port: number): Promise<Scrape> {
  const out: Scrape = new Map();
  for (const line of (await getText(`http://127.0.0.1:${port}/metrics`)).split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    out.set(m[1] as string, [...(out.get(m[1] as string) ?? []), { labels, value: Number(m[3]) }]);
  }
  return out;
}

/** Sum of the samples of `name` whose labels include `labels`; a histogram's name gives its count. */
export function metric(m: Scrape, name: string, labels: Record<string, string> = {}): number {
  const samples = m.get(name) ?? m.get(`${name}_count`) ?? [];
  return samples.filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

export async function readyz(port: number): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) })).status;
  } catch {
    return 0;
  }
}

// ---- clients ---------------------------------------------------------------------------

export interface ClientFlow {
  nodeId: string;
  /** 127.0.0.1:<client port>, as the flow events' src */
  src: string;
  sni: string;
  /** when the client started and finished it */
  startedAt: number;
  at: number;
  ms: number;
  ok: boolean;
  body: string;
  errorCode?: string;
}

/** One TLS flow to an edge: handshake, read the upstream's reply to its end, close. */
export function tlsFlow(nodeId: string, port: number, servername: string, ca: Buffer, timeoutMs = 5_000): Promise<ClientFlow> {
  return new Promise((resolve) => {
    const startedAt = Date.now();
    const t0 = performance.now();
    let body = '';
    let src = '';
    let done = false;
    const s = tlsConnect({ port, host: '127.0.0.1', servername, ca });
    s.once('connect', () => (src = `127.0.0.1:${s.localPort}`));
    const finish = (ok: boolean, errorCode?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ nodeId, src, sni: servername, startedAt, at: Date.now(), ms: performance.now() - t0, ok, body, ...(errorCode ? { errorCode } : {}) });
    };
    const timer = setTimeout(() => {
      s.destroy();
      finish(false, 'TIMEOUT');
    }, timeoutMs);
    s.setEncoding('utf8');
    s.on('data', (d: string) => (body += d));
    s.on('end', () => {
      s.end();
      finish(body.length > 0);
    });
    s.on('error', (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
  });
}

/** `n` clients, each running flows back to back (`next` picks edge and name) until stopped. */
export function load(n: number, next: (i: number) => { nodeId: string; port: number; sni: string }, ca: Buffer): { flows: ClientFlow[]; stop(): Promise<ClientFlow[]> } {
  const flows: ClientFlow[] = [];
  let running = true;
  let k = 0;
  const loops = Array.from({ length: n }, async () => {
    while (running) {
      const t = next(k++);
      flows.push(await tlsFlow(t.nodeId, t.port, t.sni, ca));
    }
  });
  return {
    flows,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return flows;
    },
  };
}

export interface AuditCheck {
  /** client flows with no flow.start (nearest in time, from their node and port) or whose flow.start has no flow.end */
  incomplete: ClientFlow[];
  /** (flowId, event) pairs written more than once */
  duplicates: number;
  /** flow.start records without a flow.end (any flow, not only the clients') */
  unended: AuditLine[];
  lines: AuditLine[];
}

/** "Nothing lost": each client flow has exactly one flow.start and one flow.end; nothing is written twice. */
export function checkAudit(lines: AuditLine[], flows: ClientFlow[]): AuditCheck {
  // A client port comes round again within a run, so a flow is matched to the flow.start from
  // its node and port whose startTime is nearest its own start (each record used once), not
  // merely counted by port: a flow excused elsewhere (lost in a SIGKILL) on the same port must
  // not make another one look incomplete.
  const starts = new Map<string, { line: AuditLine; t: number; used: boolean }[]>();
  for (const l of lines) {
    if (l.event !== 'flow.start') continue;
    const k = `${String(l['nodeId'])}|${String(l['src'])}`;
    const list = starts.get(k) ?? [];
    list.push({ line: l, t: Date.parse(String(l['startTime'])), used: false });
    starts.set(k, list);
  }
  const ended = new Set(lines.filter((l) => l.event === 'flow.end').map((l) => l.flowId));
  const incomplete = [...flows]
    .sort((x, y) => x.startedAt - y.startedAt)
    .filter((f) => {
      if (!f.src) return true;
      let best: { line: AuditLine; t: number; used: boolean } | undefined;
      for (const c of starts.get(`${f.nodeId}|${f.src}`) ?? []) {
        if (!c.used && (!best || Math.abs(c.t - f.startedAt) < Math.abs(best.t - f.startedAt))) best = c;
      }
      if (!best) return true;
      best.used = true;
      return !ended.has(best.line.flowId);
    });
  const ids = lines.map((l) => `${l.flowId}|${l.event}`);
  return { incomplete, duplicates: ids.length - new Set(ids).size, unended: lines.filter((l) => l.event === 'flow.start' && !ended.has(l.flowId)), lines };
}

/** Waits until every client flow is complete in the log (or the time is up), then a moment for late duplicates. */
export async function settleAudit(read: () => AuditLine[], flows: ClientFlow[], timeoutMs = 20_000): Promise<AuditCheck> {
  await waitFor(() => checkAudit(read(), flows).incomplete.length === 0, timeoutMs, 200).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 1_000));
  return checkAudit(read(), flows);
}
