// Metrics: an OpenTelemetry MeterProvider read by the Prometheus exporter, served with /healthz
// and /readyz on `metrics.listen`. Services create their instruments from `meter()`; with no
// metrics.listen those instruments are no-ops.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { metrics } from '@opentelemetry/api';
import type { Meter } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { splitHostPort } from './config';

export function meter(): Meter {
  return metrics.getMeter('portcullis');
}

export interface MetricsServer {
  port: number;
  /** readiness as the service judges it (listeners bound, policy loaded, Redis reachable...) */
  setReady(check: () => boolean | Promise<boolean>): void;
  stop(): Promise<void>;
}

let provider: MeterProvider | undefined;

/** Must run before services create their instruments. */
export async function startMetricsServer(listen: string): Promise<MetricsServer> {
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  provider = new MeterProvider({ readers: [exporter] });
  metrics.setGlobalMeterProvider(provider);
  let ready: () => boolean | Promise<boolean> = () => false;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') return exporter.getMetricsRequestHandler(req, res);
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
    stop: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await provider?.shutdown().catch(() => undefined);
    },
  };
}
