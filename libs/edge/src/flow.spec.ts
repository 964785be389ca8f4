import { describe, expect, it } from 'vitest';
import type { FlowEnd } from '@portcullis/flow-events';
import { createLogger, lineWriter } from '@portcullis/platform';
import { flowEndFields } from './flow';

const end = (over: Partial<FlowEnd>): FlowEnd => ({
  v: 1,
  event: 'flow.end',
  flowId: '1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b',
  nodeId: 'edge-1',
  listener: 'tls',
  mode: 'sni',
  src: '10.0.0.7:51234',
  dst: '140.82.121.4:443',
  sni: 'github.com',
  connectHost: '',
  protocol: 'tls',
  verdict: 'allow',
  ruleId: 'github',
  reason: 'rule',
  policyVersion: 3,
  startTime: '2026-11-27T10:00:00.000Z',
  bytesUp: 517,
  bytesDown: 4_096,
  durationMs: 12,
  closeReason: 'client-closed',
  traceId: '',
  ...over,
});

// Names and reasons come from the network: quotes, backslashes, control bytes, non-ASCII, long.
const hostile = ['a"b.test', 'back\\slash.test', 'ctl\u0001\u001f\n\t.test', 'ünïcödé.tëst', '\u2028\u2029.test', '😀.test', `${'x"'.repeat(80)}.test`, `${'y'.repeat(300)}`, ''];

describe('the canonical flow.end line', () => {
  const cases: [string, Partial<FlowEnd>][] = [
    ['an allowed TLS flow', {}],
    ['a CONNECT flow with a trace', { mode: 'connect', connectHost: 'api.example.com', sni: 'api.example.com', traceId: '4bf92f3577b34da6a3ce929d0e0e4736' }],
    ['a default deny with no rule', { verdict: 'deny', ruleId: '', reason: 'default', dst: 'blocked.test:443', bytesUp: 0, bytesDown: 0, closeReason: 'denied' }],
    ['an IPv6 client, huge counts', { src: '[2001:db8::1]:443', bytesUp: 2 ** 40, bytesDown: Number.MAX_SAFE_INTEGER, durationMs: 86_400_000 }],
    ...hostile.map((s, i): [string, Partial<FlowEnd>] => [`hostile string ${i}`, { sni: s, connectHost: s, ruleId: s, reason: s, dst: s, src: s, closeReason: s }]),
  ];
  it.each(cases)('%s: the same bytes pino writes for the same fields', (_name, over) => {
    const lines: string[] = [];
    const log = createLogger({ service: 'edge-proxy', destination: { write: (s: string) => void lines.push(s) } }).child({}, { redact: [] });
    const e = end(over);
    // what the edge logged before it encoded the line itself
    log.info({ flowId: e.flowId, sni: e.sni, connectHost: e.connectHost || undefined, verdict: e.verdict, ruleId: e.ruleId || undefined, reason: e.reason, dst: e.dst, src: e.src, protocol: e.protocol, closeReason: e.closeReason, bytesUp: e.bytesUp, bytesDown: e.bytesDown, durationMs: e.durationMs, traceId: e.traceId || undefined }, 'flow.end');
    lineWriter(log, 'info', 'flow.end').write(flowEndFields(e));
    const [viaPino, ours] = lines.map((l) => l.replace(/"time":"[^"]*"/, '"time":"T"'));
    expect(ours).toBe(viaPino);
    expect(JSON.parse(ours ?? '')).toMatchObject({ sni: e.sni, closeReason: e.closeReason, bytesUp: e.bytesUp });
  });
});
