export { startAuditService } from './service';
export type { AuditServiceHandle } from './service';
export { AuditConsumer } from './consumer';
export { NdjsonFileSink } from './sink';
export type { AuditSink } from './sink';
