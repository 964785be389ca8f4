// `portcullis run all|edge|policy|audit`: one service, or the whole stack in one process.
// Without redis.url, `run all` uses in-memory stand-ins for the store, the cache and the stream.
import { startAuditService } from '@portcullis/audit';
import { isEdgePrimary, startEdgeProxy, superviseEdgeWorkers } from '@portcullis/edge';
import { MemoryFlowTransport } from '@portcullis/flow-events';
import { createLogger, onShutdown, redisConfigured, routeGrpcLogs, startMetricsServer, stopTelemetry } from '@portcullis/platform';
import type { PortcullisConfig, Stoppable } from '@portcullis/platform';
import { MemoryPolicyStore, MemoryVerdictCache, startPolicyService } from '@portcullis/policy';
import { UsageError } from './args';

export async function runServices(which: string, config: Readonly<PortcullisConfig>): Promise<void> {
  const base = createLogger({ level: config.log.level, service: '' });
  const log = (service: string) => base.child({ service });
  routeGrpcLogs(base);
  const started: Stoppable[] = [{ stop: stopTelemetry }];
  onShutdown(base, started);
  // Before the services start, so their instruments bind to the real meter provider.
  // a cluster primary (run edge with edge.workers > 1) leaves the metrics port to its workers
  if (config.metrics.listen && !(which === 'edge' && isEdgePrimary(config))) {
    const metrics = await startMetricsServer(config.metrics.listen);
    started.push(metrics);
    metrics.setReady(async () => (await Promise.all(started.map((s) => (s.ready ? s.ready() : true)))).every(Boolean));
    base.info({ listen: config.metrics.listen, port: metrics.port }, 'metrics listening');
  }
  const embedded = !redisConfigured(config);
  if (embedded && which !== 'all') throw new UsageError(`run ${which} needs redis.url in the config; only \`run all\` has the embedded in-memory mode`);

  if (which === 'all') {
    if (embedded) {
      base.info('embedded mode: no redis.url, so the policy store, verdict cache and flow stream are in memory in this one process (set redis.url to use Redis)');
      const transport = new MemoryFlowTransport(config.stream.maxLen);
      const policy = await startPolicyService(config, { log: log('policy-service'), store: new MemoryPolicyStore(config.policy.historyLimit), cache: new MemoryVerdictCache() });
      started.push(policy);
      started.push(await startAuditService(config, { log: log('audit-service'), transport }));
      const edge = await startEdgeProxy(config, { log: log('edge-proxy'), transport, policyAddress: `127.0.0.1:${policy.port}` });
      started.push(edge);
      printTryIt(config, edge.listeners, `127.0.0.1:${policy.port}`);
    } else {
      const policy = await startPolicyService(config, { log: log('policy-service') });
      started.push(policy);
      started.push(await startAuditService(config, { log: log('audit-service') }));
      const edge = await startEdgeProxy(config, { log: log('edge-proxy'), policyAddress: `127.0.0.1:${policy.port}` });
      started.push(edge);
      printTryIt(config, edge.listeners, `127.0.0.1:${policy.port}`);
    }
    return;
  }
  if (which === 'edge') started.push(isEdgePrimary(config) ? await superviseEdgeWorkers(config, log('edge-proxy')) : await startEdgeProxy(config, { log: log('edge-proxy') }));
  else if (which === 'policy') started.push(await startPolicyService(config, { log: log('policy-service') }));
  else if (which === 'audit') started.push(await startAuditService(config, { log: log('audit-service') }));
  else throw new UsageError(`unknown service "${which}": use all, edge, policy or audit`);
}

function printTryIt(config: Readonly<PortcullisConfig>, listeners: Record<string, { host: string; port: number }>, policy: string): void {
  const lines = ['', 'Portcullis is running.', `  policy service (gRPC): ${policy}`, `  audit log:             ${config.audit.log}`];
  for (const [name, l] of Object.entries(listeners)) {
    const name0 = Object.keys(config.edge.resolve)[0] ?? 'example.com';
    const mode = config.edge.listeners.find((x) => x.name === name)?.mode ?? 'sni';
    lines.push(`  ${`listener ${name}:`.padEnd(23)}${l.host}:${l.port} (${mode})`);
    lines.push(`    try: openssl s_client -connect ${l.host}:${l.port} -servername ${name0} </dev/null`);
    lines.push(`    try: curl -v --connect-to ${name0}:443:${l.host}:${l.port} https://${name0}/`);
  }
  lines.push(`  policy:  node bin/portcullis policy get --config <this config>`, '');
  console.error(lines.join('\n'));
}
