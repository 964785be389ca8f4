// startAuditService(config): one consumer of the flow stream writing the durable audit log.
import { RedisFlowTransport } from '@portcullis/flow-events';
import type { FlowTransport } from '@portcullis/flow-events';
import { connectRedis, meter, redisConfigured } from '@portcullis/platform';
import type { Logger, PortcullisConfig } from '@portcullis/platform';
import { RedisAggregates } from './aggregates';
import type { Aggregates } from './aggregates';
import { AuditConsumer } from './consumer';
import { FanoutSink, NdjsonFileSink, StdoutSink } from './sink';

export interface AuditServiceHandle {
  consumer: AuditConsumer;
  aggregates: Aggregates | undefined;
  logPath: string;
  ready(): boolean;
  stop(): Promise<void>;
}

export async function startAuditService(config: Readonly<PortcullisConfig>, deps: { log: Logger; transport?: FlowTransport; aggregates?: Aggregates }): Promise<AuditServiceHandle> {
  const log = deps.log;
  let transport = deps.transport;
  let aggregates = deps.aggregates;
  const cleanups: (() => void)[] = [];
  if (!transport) {
    if (!redisConfigured(config)) throw new Error('audit-service needs redis.url (or redis.sentinels / redis.cluster; or run `portcullis run all` for the embedded stack)');
    const redis = connectRedis(config.redis, { maxRetriesPerRequest: 1 });
    const reader = connectRedis(config.redis, { maxRetriesPerRequest: 1 });
    for (const r of [redis, reader]) r.on('error', (err) => log.warn({ err: err.message }, 'redis error'));
    transport = new RedisFlowTransport(redis, { maxLen: config.stream.maxLen, reader });
    aggregates ??= new RedisAggregates(redis, config.redis.keyPrefix);
    cleanups.push(() => redis.disconnect());
  }
  const file = new NdjsonFileSink(config.audit.log, { maxBytes: config.audit.rotateBytes, daily: config.audit.rotateDaily });
  const sink = config.audit.stdout ? new FanoutSink([file, new StdoutSink()]) : file;
  const rejects = new NdjsonFileSink(`${config.audit.log}.rejects`, { daily: false });
  const consumer = new AuditConsumer(transport, sink, rejects, log, { consumer: config.audit.consumer, batchSize: config.audit.batchSize, blockMs: 1_000, claimIdleMs: config.audit.claimIdleMs }, aggregates);
  consumer.start();
  const m = meter();
  const backlog = async (): Promise<{ lag: number; pending: number }> => transport.groupInfo().catch(() => ({ lag: -1, pending: -1 }));
  m.createObservableGauge('portcullis_stream_lag', { description: 'Flow events in the stream not yet delivered to the audit group' }).addCallback(async (r) => r.observe((await backlog()).lag));
  m.createObservableGauge('portcullis_stream_pending', { description: 'Flow events delivered but not yet acknowledged' }).addCallback(async (r) => r.observe((await backlog()).pending));
  log.info({ log: config.audit.log, consumer: config.audit.consumer, stream: transport.kind }, 'audit-service consuming');
  return {
    consumer,
    aggregates,
    logPath: config.audit.log,
    ready: () => Date.now() - consumer.lastOk < 10_000,
    stop: async () => {
      await consumer.stop();
      await sink.close();
      await rejects.close();
      for (const c of cleanups) c();
    },
  };
}
