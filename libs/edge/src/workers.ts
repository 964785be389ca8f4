// edge.workers > 1: the primary process forks N workers that share the listeners (node:cluster
// hands accepted connections round-robin), restarts any that die, and drains them on shutdown.
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import type { Logger, PortcullisConfig, Stoppable } from '@portcullis/platform';

export function isEdgePrimary(config: Readonly<PortcullisConfig>): boolean {
  return config.edge.workers > 1 && cluster.isPrimary;
}

export async function superviseEdgeWorkers(config: Readonly<PortcullisConfig>, log: Logger): Promise<Stoppable & { workers(): Worker[] }> {
  const n = config.edge.workers;
  let stopping = false;
  let recentDeaths: number[] = [];
  const fork = (): Worker => {
    const w = cluster.fork();
    w.on('exit', (code, signal) => {
      if (stopping) return;
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
    const want = n * Math.max(1, config.edge.listeners.length);
    const onListening = (): void => {
      if (++listening >= want) {
        cluster.off('listening', onListening);
        resolve();
      }
    };
    cluster.on('listening', onListening);
    if (config.edge.listeners.length === 0) resolve();
  });
  log.info({ workers: n }, 'edge workers listening');
  const workers = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  return {
    workers,
    stop: async () => {
      stopping = true;
      const exits = workers().map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r()))));
      for (const w of workers()) w.process.kill('SIGTERM');
      const deadline = setTimeout(() => {
        for (const w of workers()) w.process.kill('SIGKILL');
      }, config.edge.drainTimeoutMs + 5_000);
      await Promise.all(exits);
      clearTimeout(deadline);
    },
  };
}
