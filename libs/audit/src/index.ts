export { startAuditService } from './service';
export type { AuditServiceHandle } from './service';
export { AuditConsumer, auditLine } from './consumer';
export { NdjsonFileSink, StdoutSink, FanoutSink } from './sink';
export type { AuditSink } from './sink';
export { RedisAggregates, MemoryAggregates, DIMENSIONS } from './aggregates';
export type { Aggregates, Dimension, TopEntry } from './aggregates';
