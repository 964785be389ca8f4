export { FLOW_EVENT_VERSION, flowEventSchema, flowStartSchema, flowEndSchema, encodeFlowEvent, encodeFlowStart, encodeFlowEnd, decodeFlowEvent } from './schema';
export type { FlowEvent, FlowStart, FlowEnd, DecodeResult } from './schema';
export { RedisFlowTransport, MemoryFlowTransport, FLOW_STREAM, AUDIT_GROUP, MAX_APPEND_ENTRIES } from './transport';
export type { FlowTransport, StreamEntry } from './transport';
export { FlowPublisher } from './publisher';
export type { PublisherOptions, PublisherStats } from './publisher';
export { Spool } from './spool';
