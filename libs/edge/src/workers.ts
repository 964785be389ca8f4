// edge.workers > 1: the primary forks N workers that share the listeners, restarts any that die,
// drains them on shutdown, and speaks for them on the metrics port (/metrics merges every
// worker's numbers, /readyz asks each worker).
//
// Connections: the workers accept from the shared listening socket themselves
// (cluster.SCHED_NONE). node:cluster's default, round robin, accepts in the primary and sends each
// connection to a worker, taking it off its queue before the send and closing (or re-queueing)
// it only when the worker acknowledges (lib/internal/cluster/round_robin_handle.js, handoff()).
// A worker that dies with a handoff in flight never acknowledges: the client hangs and the
// primary holds the socket in CLOSE_WAIT for ever. With SCHED_NONE a connection is either still
// in the kernel's accept queue, which any live worker drains, or in exactly one worker, whose
// death closes it. Listeners the native relay takes do the same without node:cluster: the primary
// opens their sockets and every worker's relay accepts on them (shared-listeners.ts).
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { askWorker, meter, retireCounters } from '@portcullis/platform';
import type { Logger, PortcullisConfig, Stoppable } from '@portcullis/platform';
import { isListeningMessage, openSharedListeners, SHARED_LISTENERS_ENV } from './shared-listeners';

/** How long a scrape or a readiness check waits for each worker's answer. */
export const WORKER_ANSWER_TIMEOUT_MS = 1_000;

export function isEdgePrimary(config: Readonly<PortcullisConfig>): boolean {
  return config.edge.workers > 1 && cluster.isPrimary;
}

export async function superviseEdgeWorkers(config: Readonly<PortcullisConfig>, log: Logger, opts: { answerTimeoutMs?: number } = {}): Promise<Stoppable & { workers(): Worker[] }> {
  const n = config.edge.workers;
  const timeoutMs = opts.answerTimeoutMs ?? WORKER_ANSWER_TIMEOUT_MS;
  const listenerCount = config.edge.listeners.length;
  // Frozen by the first fork.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  // The native relay's listening sockets, opened here and inherited by every worker (stdio 4…).
  const shared = openSharedListeners(config.edge);
  if (shared) {
    const base = cluster.settings.stdio ?? (cluster.settings.silent ? ['pipe', 'pipe', 'pipe', 'ipc'] : [0, 1, 2, 'ipc']);
    cluster.setupPrimary({ stdio: [...base.slice(0, 4), ...shared.fds] });
  }
  let stopping = false;
  let recentDeaths: number[] = [];
  /** workers listening on every listener: the ones asked for metrics and readiness */
  const started = new Set<Worker>();
  /** each started worker's last metrics answer, and the counters of workers that exited */
  const lastMetrics = new Map<number, string>();
  let retired = '';
  let unanswered = 0;
  const m = meter();
  m.createObservableGauge('portcullis_edge_workers', { description: 'Edge worker processes listening' }).addCallback((r) => r.observe(started.size));
  m.createObservableGauge('portcullis_metrics_unanswered_workers', { description: 'Workers that did not answer the last scrape in time (their earlier numbers were served)' }).addCallback((r) => r.observe(unanswered));
  const exits = m.createCounter('portcullis_edge_worker_exits_total', { description: 'Edge workers that exited while the node was not stopping' });

  const fork = (): Worker => {
    const w = cluster.fork(shared ? { [SHARED_LISTENERS_ENV]: shared.env } : undefined);
    let listening = 0;
    if (listenerCount === 0) w.once('online', () => started.add(w));
    const listened = (): void => {
      if (++listening >= listenerCount) started.add(w);
    };
    w.on('listening', listened);
    w.on('message', (m: unknown) => isListeningMessage(m) && listened());
    w.on('exit', (code, signal) => {
      started.delete(w);
      const last = lastMetrics.get(w.id);
      lastMetrics.delete(w.id);
      if (last) retired = retireCounters(retired, last);
      if (stopping) return;
      exits.add(1, { reason: signal ? 'signal' : code === 0 ? 'exit-0' : 'exit-error' });
      // Back off when workers keep dying, instead of a crash loop that burns the CPU.
      const now = Date.now();
      recentDeaths = [...recentDeaths.filter((t) => now - t < 60_000), now];
      const delay = Math.min(200 * 2 ** (recentDeaths.length - 1), 30_000);
      log.error({ worker: w.id, code, signal, restartInMs: delay }, 'edge worker died');
      setTimeout(() => !stopping && fork(), delay);
    });
    return w;
  };
  for (let i = 0; i < n; i++) fork();
  // Ready when every worker is listening on every listener.
  await new Promise<void>((resolve) => {
    let listening = 0;
    const want = n * Math.max(1, listenerCount);
    const onListening = (): void => {
      if (++listening >= want) {
        cluster.off('listening', onListening);
        cluster.off('message', onMessage);
        resolve();
      }
    };
    const onMessage = (_w: Worker, m: unknown): void => {
      if (isListeningMessage(m)) onListening();
    };
    cluster.on('listening', onListening);
    cluster.on('message', onMessage);
    if (listenerCount === 0) resolve();
  });
  log.info({ workers: n, scheduling: 'workers accept', nativeIntake: shared !== undefined }, 'edge workers listening');
  const workers = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  return {
    workers,
    // Ready when some worker is listening and every listening worker says it is ready.
    ready: async () => {
      const live = [...started];
      if (live.length === 0) return false;
      const answers = await Promise.all(live.map((w) => askWorker(w, { metrics: false, timeoutMs })));
      return answers.every((a) => a?.ready === true);
    },
    // A worker that does not answer in time is served with its previous numbers (so counters
    // never go down) and counted in portcullis_metrics_unanswered_workers.
    peerMetrics: async () => {
      const live = [...started];
      const answers = await Promise.all(live.map((w) => askWorker(w, { metrics: true, timeoutMs })));
      let missing = 0;
      live.forEach((w, i) => {
        const text = answers[i]?.metrics;
        if (text === undefined) missing++;
        else if (started.has(w)) lastMetrics.set(w.id, text);
      });
      unanswered = missing;
      // workers that exited meanwhile are in `retired` now, not in `started`
      return [retired, ...[...started].map((w) => lastMetrics.get(w.id) ?? '')];
    },
    stop: async () => {
      stopping = true;
      const exited = workers().map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r()))));
      for (const w of workers()) w.process.kill('SIGTERM');
      const deadline = setTimeout(() => {
        for (const w of workers()) w.process.kill('SIGKILL');
      }, config.edge.drainTimeoutMs + 5_000);
      await Promise.all(exited);
      clearTimeout(deadline);
    },
  };
}
