// Process lifecycle: run closers in reverse order on SIGTERM/SIGINT, exit 0 when they finish.
import cluster from 'node:cluster';
import type { Logger } from 'pino';
import { ConfigError, loadConfigFile } from './config';
import type { PortcullisConfig } from './config';
import { routeGrpcLogs } from './grpc-kit';
import { createLogger } from './logger';
import { answerWorkerQueries, startMetricsProvider, startMetricsServer } from './metrics';
import { stopTelemetry } from './telemetry';

export interface Stoppable {
  stop(): Promise<void>;
  /** readiness for /readyz: listeners bound, dependencies answering */
  ready?(): boolean | Promise<boolean>;
  /** a cluster primary: the Prometheus text of each worker, merged into the primary's /metrics */
  peerMetrics?(): Promise<string[]>;
}

export function onShutdown(log: Logger, stoppables: Stoppable[], opts: { timeoutMs?: number } = {}): void {
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutdown');
    const timer = setTimeout(() => {
      log.error('shutdown timed out');
      process.exit(1);
    }, opts.timeoutMs ?? 30_000);
    timer.unref();
    for (const s of [...stoppables].reverse()) {
      try {
        await s.stop();
      } catch (err) {
        log.error({ err }, 'shutdown step failed');
      }
    }
    log.flush();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

/**
 * The body of every service's main.ts: read --config, start, stop on signals.
 * Bad config or a failed start prints one clear message and exits 1.
 */
export function runServiceMain<T extends Stoppable>(
  service: string,
  start: (config: Readonly<PortcullisConfig>, deps: { log: Logger }) => Promise<T>,
  argv: string[] = process.argv,
): void {
  const i = argv.indexOf('--config');
  const path = i > 0 ? argv[i + 1] : undefined;
  if (!path) {
    console.error(`usage: ${service} --config FILE`);
    process.exit(2);
  }
  (async () => {
    const config = loadConfigFile(path);
    const log = createLogger({ level: config.log.level, service });
    routeGrpcLogs(log);
    const stoppables: Stoppable[] = [{ stop: stopTelemetry }];
    // Before the service starts, so its instruments bind to the real meter provider. With
    // edge.workers > 1 the primary serves the metrics port (its workers' numbers merged into
    // each scrape, /readyz from theirs) and the workers answer it over the cluster IPC channel.
    const clusterEdge = service === 'edge-proxy' && config.edge.workers > 1;
    const worker = clusterEdge && cluster.isWorker;
    const metricsServer = config.metrics.listen && !worker ? await startMetricsServer(config.metrics.listen) : undefined;
    const metricsProvider = config.metrics.listen && worker ? startMetricsProvider() : undefined;
    if (metricsServer) {
      stoppables.push(metricsServer);
      log.info({ listen: config.metrics.listen, port: metricsServer.port }, 'metrics listening');
    }
    if (metricsProvider) stoppables.push(metricsProvider);
    const handle = await start(config, { log });
    stoppables.push(handle);
    const ready = (): boolean | Promise<boolean> => (handle.ready ? handle.ready() : true);
    metricsServer?.setReady(ready);
    const peers = handle.peerMetrics?.bind(handle);
    if (metricsServer && peers) metricsServer.setPeers(peers);
    if (worker) answerWorkerQueries({ ready, ...(metricsProvider ? { collect: metricsProvider.collect } : {}) });
    onShutdown(log, stoppables);
  })().catch((err: unknown) => {
    console.error(err instanceof ConfigError ? err.message : err instanceof Error ? `${service}: ${err.message}` : err);
    process.exit(1);
  });
}
