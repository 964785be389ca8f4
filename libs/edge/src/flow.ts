// One client connection through the six stages: listen → sniff → decide → connect → relay → report.
// Every outcome, refusal and failure ends in exactly one flow.start and one flow.end.
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { ClientHelloReader, detectProtocol, MAX_CLIENT_HELLO_BYTES } from '@portcullis/sniff';
import type { FlowEnd, FlowStart } from '@portcullis/flow-events';
import type { ListenerConfig, Logger } from '@portcullis/platform';
import { connectUpstream } from './connect';
import type { DnsCache } from './connect';
import type { SsrfGuard } from './ssrf';
import type { DecideInput, DecisionClient, Verdict } from './decide';
import { endStage, FlowTrace } from './observe';
import type { EdgeMetrics, SniffOutcome } from './observe';

/** TLS alert record: fatal access_denied (49). */
export const ACCESS_DENIED_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31]);
/** TLS alert record: fatal decode_error (50), for hellos we cannot parse. */
export const DECODE_ERROR_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);
/** TLS alert record: fatal internal_error (80), when an allowed destination cannot be reached. */
export const INTERNAL_ERROR_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50]);

export interface FlowContext {
  nodeId: string;
  listener: ListenerConfig;
  sniffTimeoutMs: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  resolve: Readonly<Record<string, readonly string[]>>;
  decider: DecisionClient;
  metrics: EdgeMetrics;
  guard: SsrfGuard;
  dns: DnsCache;
  log: Logger;
  report(e: FlowStart | FlowEnd): void;
  track(socket: Socket): void;
  /** true once a drain has timed out: flows still open are closed with reason `shutdown` */
  shuttingDown(): boolean;
}

type Protocol = FlowStart['protocol'];

interface Learned {
  sni: string;
  protocol: Protocol;
  ech: boolean;
  echGrease: boolean;
  noNameReason: string;
  /** sniff-stage refusal that no policy can override (unparsable or oversized hello) */
  refusal?: { reason: string; alert: Buffer; detail?: string };
  outcome: SniffOutcome | 'client_closed' | 'refused';
}

/** sniff: buffers client bytes until the hello is complete, the bytes are clearly not TLS, or time runs out. */
function sniff(client: Socket, timeoutMs: number): Promise<{ learned: Learned; buffered: Buffer[] }> {
  return new Promise((resolve) => {
    const reader = new ClientHelloReader();
    const buffered: Buffer[] = [];
    let done = false;
    const finish = (learned: Learned): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client.off('data', onData);
      client.off('end', onEnd);
      client.pause();
      resolve({ learned, buffered });
    };
    const none = (outcome: Learned['outcome'], protocol: Protocol, noNameReason: string, refusal?: Learned['refusal']): Learned => ({ sni: '', protocol, ech: false, echGrease: false, noNameReason, outcome, ...(refusal ? { refusal } : {}) });
    const onData = (chunk: Buffer): void => {
      buffered.push(chunk);
      const r = reader.push(chunk);
      switch (r.kind) {
        case 'need-more':
          return;
        case 'hello': {
          const h = r.hello;
          const sni = h.sni.kind === 'name' ? h.sni.name : '';
          const noName = h.sni.kind === 'name' ? '' : h.sni.kind === 'none' ? 'no-sni' : `sni-${h.sni.kind}`;
          // GREASE ECH and real ECH look alike on the wire (RFC 9849 §6.2). With a readable SNI the
          // connection goes to that name's servers, so the name decides (echGrease); without one the
          // profile's `ech` action does. See docs/policy.md.
          return finish({ sni, protocol: 'tls', ech: h.ech.present, echGrease: h.ech.present && sni !== '', noNameReason: noName, outcome: sni ? 'sni_found' : 'sni_not_found' });
        }
        case 'not-tls': {
          const p = detectProtocol(Buffer.concat(buffered));
          return finish(none('not_tls', p === 'need-more' ? 'unknown' : p, 'not-tls'));
        }
        case 'too-large':
          return finish(none('too_large', 'tls', 'hello-too-large', { reason: 'hello-too-large', alert: DECODE_ERROR_ALERT, detail: `ClientHello larger than ${MAX_CLIENT_HELLO_BYTES} bytes` }));
        case 'invalid':
          return finish(none('invalid', 'tls', 'invalid-hello', { reason: 'invalid-hello', alert: DECODE_ERROR_ALERT, detail: `malformed ClientHello: ${r.reason}` }));
      }
    };
    const onEnd = (): void => {
      const reason = buffered.length ? 'truncated-hello' : 'client-closed';
      finish(none(buffered.length ? 'invalid' : 'client_closed', buffered.length ? 'tls' : 'unknown', reason, { reason, alert: Buffer.alloc(0) }));
    };
    // Silence is an answer too (server-speaks-first protocols): decide on what we know.
    const timer = setTimeout(() => finish(none('timeout', buffered.length ? 'tls' : 'unknown', buffered.length ? 'sniff-timeout' : 'client-silent')), timeoutMs);
    client.on('data', onData);
    client.on('end', onEnd);
  });
}

/**
 * `refusedBy`: the listener already refused this connection (a connection limit); it still gets
 * its pair of flow events, and the client a plain close.
 */
export async function handleFlow(client: Socket, ctx: FlowContext, refusedBy?: string): Promise<void> {
  const started = Date.now();
  const flowId = randomUUID();
  const src = `${client.remoteAddress ?? ''}:${client.remotePort ?? 0}`;
  const mode = ctx.listener.mode;
  const port = ctx.listener.upstreamPort;
  const spans = new FlowTrace({ listener: ctx.listener.name, src, flowId });
  let closeReason = '';
  let startEvent: FlowStart | undefined;
  ctx.track(client);
  client.on('error', (err: NodeJS.ErrnoException) => {
    closeReason ||= `client-error:${err.code ?? 'unknown'}`;
  });
  let clientClosed = false;
  client.once('close', () => (clientClosed = true));

  // report: the flow.end record, the canonical close log line, byte counters, the root span.
  let ended = false;
  const endFlow = (upstream?: Socket): void => {
    if (!startEvent || ended) return;
    ended = true;
    const bytesUp = upstream?.bytesWritten ?? 0;
    const bytesDown = upstream ? client.bytesWritten : 0;
    const reason = closeReason || (ctx.shuttingDown() ? 'shutdown' : 'closed');
    ctx.report({ ...startEvent, event: 'flow.end', bytesUp, bytesDown, durationMs: Date.now() - started, closeReason: reason, traceId: spans.traceId });
    if (bytesUp) ctx.metrics.bytes.add(bytesUp, { direction: 'up' });
    if (bytesDown) ctx.metrics.bytes.add(bytesDown, { direction: 'down' });
    spans.end({ sni: startEvent.sni, verdict: startEvent.verdict, ruleId: startEvent.ruleId, reason: startEvent.reason, dst: startEvent.dst, bytesUp, bytesDown, closeReason: reason });
    ctx.log.info({ flowId, sni: startEvent.sni, verdict: startEvent.verdict, closeReason: reason, bytesUp, bytesDown, traceId: spans.traceId || undefined }, 'flow.end');
  };

  const refuse = (alert: Buffer, reason: string): void => {
    closeReason = reason;
    if (clientClosed) return endFlow();
    client.once('close', () => endFlow());
    if (client.destroyed) return;
    client.resume(); // discard whatever else the client sends
    if (alert.length) client.end(alert);
    else client.end();
    client.setTimeout(2_000, () => client.destroy());
  };

  // sniff (unless the listener already refused the connection)
  const sniffSpan = refusedBy ? undefined : spans.stage('edge.sniff');
  const { learned, buffered } = refusedBy
    ? { learned: { sni: '', protocol: 'unknown' as const, ech: false, echGrease: false, noNameReason: refusedBy, outcome: 'refused' as const, refusal: { reason: refusedBy, alert: Buffer.alloc(0) } }, buffered: [] }
    : await sniff(client, ctx.listener.sniffTimeoutMs ?? ctx.sniffTimeoutMs);
  if (!refusedBy) ctx.metrics.sniff.add(1, { outcome: learned.outcome });
  endStage(sniffSpan, { sni: learned.sni, protocol: learned.protocol, outcome: learned.outcome });

  const begin = (v: Pick<Verdict, 'verdict' | 'ruleId' | 'reason' | 'detail' | 'policyVersion' | 'wouldDeny'>, dst: string): FlowStart => {
    const traceparent = spans.traceparent;
    startEvent = {
      v: 1,
      event: 'flow.start',
      flowId,
      nodeId: ctx.nodeId,
      listener: ctx.listener.name,
      mode,
      src,
      dst,
      sni: learned.sni,
      connectHost: '',
      protocol: learned.protocol,
      verdict: v.verdict,
      ruleId: v.ruleId,
      reason: v.reason,
      detail: v.detail,
      policyVersion: v.policyVersion,
      startTime: new Date(started).toISOString(),
      ...(v.wouldDeny ? { wouldDeny: true } : {}),
      ...(learned.echGrease ? { echGrease: true } : {}),
      ...(traceparent ? { traceparent } : {}),
    };
    ctx.report(startEvent);
    ctx.metrics.flows.add(1, { listener: ctx.listener.name, verdict: v.verdict, reason: v.reason });
    ctx.log.info({ flowId, sni: learned.sni, verdict: v.verdict, ruleId: v.ruleId, reason: v.reason, dst, src, protocol: learned.protocol, traceId: spans.traceId || undefined }, 'flow.start');
    return startEvent;
  };

  if (learned.refusal) {
    begin({ verdict: 'deny', ruleId: '', reason: learned.refusal.reason, detail: learned.refusal.detail ?? `refused before any decision: ${learned.refusal.reason}`, policyVersion: ctx.decider.policyVersion, wouldDeny: false }, '');
    return refuse(learned.refusal.alert, learned.refusal.reason);
  }

  // decide
  const decideSpan = spans.stage('edge.decide');
  const decideStarted = performance.now();
  const input: DecideInput = { sni: learned.sni, connectHost: '', port, sourceIp: client.remoteAddress ?? '', protocol: learned.protocol, ech: learned.ech, echGrease: learned.echGrease, noNameReason: learned.noNameReason, listener: ctx.listener.name, flowId, traceparent: FlowTrace.traceparent(decideSpan) ?? '' };
  const verdict = await ctx.decider.decide(input);
  ctx.metrics.decide.record((performance.now() - decideStarted) / 1000, { source: verdict.source });
  ctx.metrics.l1.add(1, { result: verdict.source === 'l1' ? 'hit' : 'miss' });
  endStage(decideSpan, { sni: learned.sni, verdict: verdict.verdict, ruleId: verdict.ruleId, reason: verdict.reason, source: verdict.source, policyVersion: verdict.policyVersion });
  const name = learned.sni;
  const dstName = name ? `${name}:${port}` : '';

  if (verdict.verdict === 'deny') {
    begin(verdict, dstName);
    return refuse(learned.protocol === 'tls' ? ACCESS_DENIED_ALERT : Buffer.alloc(0), 'denied');
  }
  if (!name) {
    // Allowed without a name: an SNI listener has nowhere to send it.
    begin({ ...verdict, verdict: 'deny', reason: 'no-destination', detail: `${verdict.detail}; but no name to connect to` }, '');
    return refuse(Buffer.alloc(0), 'no-destination');
  }

  // connect
  const connectSpan = spans.stage('edge.connect', { sni: name, port });
  const conn = await connectUpstream(name, port, { resolve: ctx.resolve, timeoutMs: ctx.connectTimeoutMs, guard: ctx.guard, allowPrivate: verdict.allowPrivate, dns: ctx.dns });
  endStage(connectSpan, conn.ok ? { dst: conn.address } : { reason: conn.reason, detail: conn.detail });
  if (!conn.ok) {
    // Allowed by policy but refused or failed here: the record says why (private-destination, dns-failed...).
    begin(conn.reason === 'private-destination' ? { ...verdict, verdict: 'deny', reason: conn.reason, detail: conn.detail } : { ...verdict, detail: `${verdict.detail}; ${conn.detail}` }, dstName);
    return refuse(conn.reason === 'private-destination' ? ACCESS_DENIED_ALERT : INTERNAL_ERROR_ALERT, conn.reason);
  }
  const upstream = conn.socket;
  ctx.track(upstream);
  begin(verdict, `${conn.address}:${port}`);
  if (client.destroyed) {
    closeReason = 'client-closed';
    upstream.destroy();
    endFlow(upstream);
    return;
  }

  // relay: the sniffed bytes first, unchanged, then both directions with half-close.
  const relaySpan = spans.stage('edge.relay');
  relay(client, upstream, buffered, ctx.idleTimeoutMs, (reason) => {
    closeReason ||= reason;
  }, () => {
    endStage(relaySpan, { bytesUp: upstream.bytesWritten, bytesDown: client.bytesWritten });
    endFlow(upstream);
  });
}

/** Pipes both ways; an end on one side becomes an end (FIN) on the other, not a full close. */
export function relay(client: Socket, upstream: Socket, first: Buffer[], idleMs: number, setReason: (r: string) => void, done: () => void): void {
  let open = 2;
  const closed = (): void => {
    if (--open === 0) done();
  };
  client.once('close', closed);
  upstream.once('close', closed);
  upstream.on('error', (err: NodeJS.ErrnoException) => {
    setReason(`upstream-error:${err.code ?? 'unknown'}`);
    client.destroy();
  });
  client.on('error', () => upstream.destroy());
  // A client that vanished with an error (reset) takes the upstream with it. A clean close is
  // not one: its FIN already became the upstream's end(), and bytes still queued for the
  // upstream must reach it.
  client.once('close', (hadError: boolean) => hadError && upstream.destroy());
  client.once('end', () => setReason('client-closed'));
  upstream.once('end', () => setReason('upstream-closed'));
  // client activity covers both directions: reads are uploads, writes are downloads
  client.setTimeout(idleMs, () => {
    setReason('idle-timeout');
    client.destroy();
    upstream.destroy();
  });
  for (const b of first) upstream.write(b);
  client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
}
