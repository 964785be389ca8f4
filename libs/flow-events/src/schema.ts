// The flow-event schema, defined once and validated on both sides of the stream.
import { z } from 'zod';

export const FLOW_EVENT_VERSION = 1;

export const protocolSchema = z.enum(['tls', 'ssh', 'http', 'unknown']);
export const verdictSchema = z.enum(['allow', 'deny']);

const common = {
  v: z.literal(FLOW_EVENT_VERSION),
  flowId: z.string().min(1).max(64),
  nodeId: z.string().max(256),
  listener: z.string().max(128),
  mode: z.string().max(32),
  src: z.string().max(64),
  dst: z.string().max(320),
  sni: z.string().max(1024),
  connectHost: z.string().max(1024),
  protocol: protocolSchema,
  verdict: verdictSchema,
  ruleId: z.string().max(256),
  reason: z.string().max(64),
  detail: z.string().max(1024).optional(),
  policyVersion: z.number().int().min(0),
  startTime: z.string(),
  wouldDeny: z.boolean().optional(),
  echGrease: z.boolean().optional(),
  traceparent: z.string().max(128).optional(),
};

export const flowStartSchema = z.strictObject({ event: z.literal('flow.start'), ...common });
export const flowEndSchema = z.strictObject({
  event: z.literal('flow.end'),
  ...common,
  bytesUp: z.number().int().min(0),
  bytesDown: z.number().int().min(0),
  durationMs: z.number().min(0),
  closeReason: z.string().max(64),
  traceId: z.string().max(64),
});
export const flowEventSchema = z.discriminatedUnion('event', [flowStartSchema, flowEndSchema]);

export type FlowStart = z.infer<typeof flowStartSchema>;
export type FlowEnd = z.infer<typeof flowEndSchema>;
export type FlowEvent = z.infer<typeof flowEventSchema>;

export type DecodeResult = { ok: true; event: FlowEvent } | { ok: false; error: string };

export function encodeFlowEvent(e: FlowEvent): string {
  return JSON.stringify(e);
}

export function decodeFlowEvent(text: string): DecodeResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, error: 'not JSON' };
  }
  const r = flowEventSchema.safeParse(raw);
  return r.success ? { ok: true, event: r.data } : { ok: false, error: r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
}
