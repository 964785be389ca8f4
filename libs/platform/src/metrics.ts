// Metrics: an OpenTelemetry MeterProvider read by the Prometheus exporter, served with /healthz
// and /readyz on `metrics.listen`. Services create their instruments from `meter()`; with no
// metrics.listen those instruments are no-ops.
//
// A cluster (edge.workers > 1) is one scrape target: each worker keeps its instruments but serves
// no port (startMetricsProvider); the primary serves the port and, per scrape, asks every worker
// over the cluster IPC channel for its Prometheus text (askWorker / answerWorkerQueries), then
// merges them with its own (mergePrometheusText).
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { metrics } from '@opentelemetry/api';
import type { Meter } from '@opentelemetry/api';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { splitHostPort } from './config';

export function meter(): Meter {
  return metrics.getMeter('portcullis');
}

export interface MetricsServer {
  port: number;
  /** readiness as the service judges it (listeners bound, policy loaded, Redis reachable...) */
  setReady(check: () => boolean | Promise<boolean>): void;
  /** a cluster primary: its workers' Prometheus texts, merged into every scrape with its own */
  setPeers(collect: () => Promise<string[]>): void;
  stop(): Promise<void>;
}

export interface MetricsProvider {
  /** this process's instruments as Prometheus text */
  collect(): Promise<string>;
  stop(): Promise<void>;
}

let provider: MeterProvider | undefined;

/** Must run before services create their instruments. Serves no port (see startMetricsServer). */
export function startMetricsProvider(): MetricsProvider {
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  const serializer = new PrometheusSerializer(undefined, false, undefined, false, true);
  provider = new MeterProvider({ readers: [exporter] });
  metrics.setGlobalMeterProvider(provider);
  observeProcessFds(meter());
  const own = provider;
  return {
    collect: async () => serializer.serialize((await exporter.collect()).resourceMetrics),
    stop: async () => {
      await own.shutdown().catch(() => undefined);
    },
  };
}

/** Must run before services create their instruments. */
export async function startMetricsServer(listen: string): Promise<MetricsServer> {
  const own = startMetricsProvider();
  let ready: () => boolean | Promise<boolean> = () => false;
  let peers: (() => Promise<string[]>) | undefined;
  const scrape = async (): Promise<string> => {
    if (!peers) return own.collect();
    // the peers first: asking them updates the primary's own gauges (unanswered workers)
    const theirs = await peers();
    return mergePrometheusText([await own.collect(), ...theirs]);
  };
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      scrape().then(
        (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`# failed to collect metrics: ${String(err)}\n`),
      );
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      Promise.resolve()
        .then(ready)
        .then(
          (ok) => res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n'),
          () => res.writeHead(503).end('not ready\n'),
        );
      return;
    }
    res.writeHead(404).end();
  });
  const { host, port } = splitHostPort(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : port,
    setReady: (check) => (ready = check),
    setPeers: (collect) => (peers = collect),
    stop: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await own.stop();
    },
  };
}

// ---- file descriptors ------------------------------------------------------------------

/** The soft RLIMIT_NOFILE of this process (Node raises it to the hard limit at start); undefined without procfs. */
export function openFilesLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!m) return undefined;
    return m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Descriptors this process has open; undefined without procfs, or when none is left to read it with. */
export function openFileCount(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length - 1; // less the one reading the directory
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // EMFILE: every descriptor is taken, which is the answer
    return code === 'EMFILE' ? openFilesLimit() : undefined;
  }
}

function observeProcessFds(m: Meter): void {
  // the names every Prometheus client library uses for these
  m.createObservableGauge('process_open_fds', { description: 'Open file descriptors' }).addCallback((r) => {
    const n = openFileCount();
    if (n !== undefined) r.observe(n);
  });
  m.createObservableGauge('process_max_fds', { description: 'Limit on open file descriptors (RLIMIT_NOFILE)' }).addCallback((r) => {
    const n = openFilesLimit();
    if (n !== undefined && n < Number.MAX_SAFE_INTEGER) r.observe(n);
  });
}

// ---- Prometheus text from several processes --------------------------------------------

interface Sample {
  /** the sample's own name (a histogram's name_bucket, name_sum, name_count) and label text, as first seen */
  head: string;
  value: number;
}

interface Family {
  help?: string;
  type?: string;
  /** name + sorted labels → sample */
  samples: Map<string, Sample>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\S+)?\s*$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function parseValue(v: string): number {
  if (v === '+Inf' || v === 'Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return Number(v);
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/**
 * Gauges that name a state rather than an amount (a policy version, `target_info`) are merged by
 * their maximum; everything else (counters, histograms, active flows, queue depth...) by its sum.
 */
function mergedByMax(family: string, f: Family): boolean {
  return f.type === 'gauge' && (family.endsWith('_version') || family.endsWith('_info'));
}

function parse(texts: string[], onlyCumulative = false): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { samples: new Map() }));
    return f;
  };
  for (const text of texts) {
    let current = '';
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) {
        const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line);
        if (!m) continue;
        current = m[2] as string;
        const f = family(current);
        if (m[1] === 'HELP') f.help ??= m[3];
        else f.type ??= m[3];
        continue;
      }
      const m = SAMPLE.exec(line);
      if (!m) continue;
      const name = m[1] as string;
      const labels = m[2] ?? '';
      // a sample belongs to the family announced above it (name_bucket under name), else its own
      const familyName = current && name.startsWith(current) ? current : name;
      const f = family(familyName);
      const sorted = [...labels.matchAll(LABEL)].map((l) => `${l[1]}="${l[2]}"`).sort().join(',');
      const key = `${name}{${sorted}}`;
      const value = parseValue(m[3] as string);
      const s = f.samples.get(key);
      if (!s) f.samples.set(key, { head: `${name}${labels}`, value });
      else s.value = mergedByMax(familyName, f) ? Math.max(s.value, value) : s.value + value;
    }
  }
  if (onlyCumulative) for (const [name, f] of families) if (f.type !== 'counter' && f.type !== 'histogram' && f.type !== 'summary') families.delete(name);
  return families;
}

function serialize(families: Map<string, Family>): string {
  const out: string[] = [];
  for (const [name, f] of families) {
    if (f.samples.size === 0) continue;
    if (f.help !== undefined) out.push(`# HELP ${name} ${f.help}`);
    if (f.type !== undefined) out.push(`# TYPE ${name} ${f.type}`);
    for (const s of f.samples.values()) out.push(`${s.head} ${formatValue(s.value)}`);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/**
 * One Prometheus text from several processes' texts: samples with the same name and label set
 * are added up (counters, histogram buckets, sums and counts, gauges such as active flows), except
 * gauges named `*_version` or `*_info`, which take the maximum.
 */
export function mergePrometheusText(texts: string[]): string {
  return serialize(parse(texts));
}

/**
 * The counters and histograms of `text` added to `retired`: what a worker that exited had
 * counted, kept so that the cluster's totals never go down (Prometheus would read a drop as a
 * counter reset). Gauges are dropped: they die with the process.
 */
export function retireCounters(retired: string, text: string): string {
  return serialize(parse([retired, text], true));
}

// ---- asking cluster workers ------------------------------------------------------------

/** The primary's question to a worker, and the worker's answer, on the cluster IPC channel. */
export interface WorkerQuery {
  portcullis: 'query';
  id: number;
  metrics: boolean;
}
export interface WorkerAnswer {
  portcullis: 'answer';
  id: number;
  ready: boolean;
  /** Prometheus text, when asked for metrics and the worker has a provider */
  metrics?: string;
}

/** What the primary needs of a cluster worker (node:cluster's Worker has it). */
export interface IpcPeer {
  send(message: WorkerQuery, callback?: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

let nextQuery = 0;

/**
 * Asks one worker for its readiness (and metrics). Resolves undefined if it does not answer
 * within `timeoutMs` (stopped, busy, dying, channel closed): one stuck worker never holds up a
 * scrape or a readiness check for longer than that.
 */
export function askWorker(worker: IpcPeer, opts: { metrics: boolean; timeoutMs: number }): Promise<WorkerAnswer | undefined> {
  const id = ++nextQuery;
  return new Promise((resolve) => {
    let done = false;
    const finish = (answer: WorkerAnswer | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      worker.off('message', onMessage);
      resolve(answer);
    };
    const onMessage = (m: unknown): void => {
      const a = m as Partial<WorkerAnswer> | null;
      if (a && typeof a === 'object' && a.portcullis === 'answer' && a.id === id) finish(a as WorkerAnswer);
    };
    const timer = setTimeout(() => finish(undefined), opts.timeoutMs);
    worker.on('message', onMessage);
    try {
      worker.send({ portcullis: 'query', id, metrics: opts.metrics }, (err) => err && finish(undefined));
    } catch {
      finish(undefined);
    }
  });
}

/** In a cluster worker: answers the primary's queries (askWorker) on the IPC channel. Returns a remover. */
export function answerWorkerQueries(self: { ready(): boolean | Promise<boolean>; collect?: () => Promise<string> }, proc: NodeJS.Process = process): () => void {
  const onMessage = (m: unknown): void => {
    const q = m as Partial<WorkerQuery> | null;
    if (!q || typeof q !== 'object' || q.portcullis !== 'query' || typeof q.id !== 'number') return;
    const id = q.id;
    void (async () => {
      const ready = await Promise.resolve().then(() => self.ready()).catch(() => false);
      const text = q.metrics && self.collect ? await self.collect().catch(() => undefined) : undefined;
      const answer: WorkerAnswer = { portcullis: 'answer', id, ready, ...(text !== undefined ? { metrics: text } : {}) };
      if (proc.connected) proc.send?.(answer, undefined, undefined, () => undefined);
    })();
  };
  proc.on('message', onMessage);
  return () => proc.off('message', onMessage);
}
