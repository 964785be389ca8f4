// One client connection through the six stages: listen → sniff → decide → connect → relay → report.
// Every outcome, refusal and failure ends in exactly one flow.start and one flow.end.
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { ClientHelloReader, readClientHello } from '@portcullis/sniff';
import { encodeFlowEnd, encodeFlowStart } from '@portcullis/flow-events';
import type { FlowEnd, FlowStart } from '@portcullis/flow-events';
import { isoTimestamp } from '@portcullis/platform';
import type { LineWriter, ListenerConfig, Logger } from '@portcullis/platform';
import { answerFreshFor, connectUpstream } from './connect';
import type { ConnectOptions, ConnectResult, DnsCache } from './connect';
import type { DecideInput, DecisionClient, Verdict } from './decide';
import { ACCESS_DENIED_ALERT, fromHello, intake, namedHello } from './intake';
import type { Intake } from './intake';
import { idleWatch } from './idle';
import type { IdleWatch } from './idle';
import { endStage, FlowTrace } from './observe';
import type { EdgeMetrics } from './observe';
import type { SsrfGuard } from './ssrf';
import type { NativeClient, NativeRelay, RelayEnd, Sniffed } from './native-relay';
import type { ExpressRoutes, Route } from './express';

export { ACCESS_DENIED_ALERT, DECODE_ERROR_ALERT, INTERNAL_ERROR_ALERT } from './intake';

export interface FlowContext {
  nodeId: string;
  listener: ListenerConfig;
  sniffTimeoutMs: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  requireSniMatch: boolean;
  resolve: Readonly<Record<string, readonly string[]>>;
  decider: DecisionClient;
  metrics: EdgeMetrics;
  guard: SsrfGuard;
  dns: DnsCache;
  log: Logger;
  /** the canonical flow lines (flow.start, flow.end): flow fields only, nothing to redact */
  flowLog?: Logger;
  /** the flow.end line, encoded here (flowEndFields) instead of by pino: same line, less work */
  flowEndLine?: LineWriter;
  /** a flow event for the audit stream, encoded (encodeFlowStart / encodeFlowEnd) */
  report(encoded: string): void;
  track(socket: Socket): void;
  /** the native data plane (edge.relay: native); absent: every flow relays in JavaScript */
  nativeRelay?: NativeRelay;
  /** the express lane's routes (native intake; absent: off) */
  express?: ExpressRoutes;
  /** true once a drain has timed out: flows still open are closed with reason `shutdown` */
  shuttingDown(): boolean;
}

/**
 * The fields of the canonical flow.end line as JSON pairs, in the line's order; empty
 * connectHost, ruleId and traceId are left out. The same as pino writes for the object
 * { flowId, sni, connectHost, verdict, ruleId, reason, dst, src, protocol, closeReason, bytesUp,
 * bytesDown, durationMs, traceId }, but for a string with a lone surrogate, which pino writes raw
 * (an invalid UTF-8 sequence once written) and JSON.stringify escapes.
 */
export function flowEndFields(e: FlowEnd): string {
  const q = JSON.stringify;
  return (
    `,"flowId":${q(e.flowId)},"sni":${q(e.sni)}` +
    (e.connectHost ? `,"connectHost":${q(e.connectHost)}` : '') +
    `,"verdict":${q(e.verdict)}` +
    (e.ruleId ? `,"ruleId":${q(e.ruleId)}` : '') +
    `,"reason":${q(e.reason)},"dst":${q(e.dst)},"src":${q(e.src)},"protocol":${q(e.protocol)},"closeReason":${q(e.closeReason)},"bytesUp":${num(e.bytesUp)},"bytesDown":${num(e.bytesDown)},"durationMs":${num(e.durationMs)}` +
    (e.traceId ? `,"traceId":${q(e.traceId)}` : '')
  );
}

/** a number as pino writes it: null when not finite */
const num = (n: number): string => (Number.isFinite(n) ? String(n) : 'null');

/** The intake of a connection the listener refused before reading it (a connection limit). */
function refusedIntake(reason: string): Intake {
  return { sni: '', connectHost: '', port: 0, protocol: 'unknown', ech: false, echGrease: false, noNameReason: reason, outcome: 'refused', refusal: { reason, reply: Buffer.alloc(0), detail: `over ${reason}` }, forward: [], replies: { denied: () => Buffer.alloc(0), unreachable: () => Buffer.alloc(0) }, tunnel: false };
}

/** upstream: a Node socket, or none when the native intake's thread connected itself */
type Decided = { refuse: Buffer; reason: string } | { upstream: Socket | undefined; address: string };

/**
 * What every flow shares whatever carries its client (a Node socket, or the native intake): the
 * decision, the upstream connection, and exactly one flow.start and one flow.end.
 */
class FlowCore {
  readonly started = Date.now();
  readonly flowId = randomUUID();
  readonly spans: FlowTrace;
  closeReason = '';
  startEvent: FlowStart | undefined;
  /** flow.start as sent; flow.end repeats it */
  private startJson = '';
  /** a name learned after the decision (a ClientHello inside a CONNECT/SOCKS tunnel) */
  tunnelSni = '';
  private ended = false;
  learned!: Intake;
  srcAddress = '';
  src = '';
  /** the last decision asked (ask) and its answer */
  input: DecideInput | undefined;
  verdict: Verdict | undefined;

  constructor(readonly ctx: FlowContext) {
    this.spans = new FlowTrace({ listener: ctx.listener.name, flowId: this.flowId });
  }

  /** After the sniff stage: what was learned, and who the client is. */
  sniffed(learned: Intake, refusedBy: string | undefined, sniffSpan: ReturnType<FlowTrace['stage']>, remoteAddress: string, remotePort: number): void {
    this.learned = learned;
    if (!refusedBy) this.ctx.metrics.sniff.add(1, { outcome: learned.outcome });
    endStage(sniffSpan, { sni: learned.sni, connectHost: learned.connectHost, protocol: learned.protocol, outcome: learned.outcome });
    this.srcAddress = learned.source?.address ?? remoteAddress;
    this.src = `${this.srcAddress}:${learned.source?.port ?? remotePort}`;
  }

  get dstName(): string {
    const name = this.learned.connectHost || this.learned.sni;
    return name ? `${name}:${this.learned.port}` : '';
  }

  begin(v: Pick<Verdict, 'verdict' | 'ruleId' | 'reason' | 'detail' | 'policyVersion' | 'wouldDeny'>, dst: string): FlowStart {
    const { ctx, learned } = this;
    const traceparent = this.spans.traceparent;
    // One literal with every key, absent ones undefined (JSON leaves them out, in the same
    // order): spreading optional parts in made an object V8 copies slowly, and flow.end copied it.
    const startEvent: FlowStart = {
      v: 1,
      event: 'flow.start',
      flowId: this.flowId,
      nodeId: ctx.nodeId,
      listener: ctx.listener.name,
      mode: ctx.listener.mode,
      src: this.src,
      dst,
      sni: learned.sni,
      connectHost: learned.connectHost,
      protocol: learned.protocol,
      verdict: v.verdict,
      ruleId: v.ruleId,
      reason: v.reason,
      detail: v.detail,
      policyVersion: v.policyVersion,
      startTime: isoTimestamp(this.started),
      wouldDeny: v.wouldDeny ? true : undefined,
      echGrease: learned.echGrease ? true : undefined,
      traceparent: traceparent || undefined,
    };
    this.startEvent = startEvent;
    this.startJson = encodeFlowStart(startEvent);
    ctx.report(this.startJson);
    ctx.metrics.flows.add(1, { listener: ctx.listener.name, verdict: v.verdict, reason: v.reason });
    // flow.start is in the audit stream; as a log line only at debug (flow.end has it all)
    if (ctx.log.isLevelEnabled('debug')) (ctx.flowLog ?? ctx.log).debug({ flowId: this.flowId, sni: learned.sni, connectHost: learned.connectHost || undefined, verdict: v.verdict, ruleId: v.ruleId, reason: v.reason, dst, src: this.src, protocol: learned.protocol, traceId: this.spans.traceId || undefined }, 'flow.start');
    return startEvent;
  }

  /** report: the flow.end record, the canonical close log line, byte counters, the root span. */
  end(bytesUp: number, bytesDown: number): void {
    const { ctx, startEvent } = this;
    if (!startEvent || this.ended) return;
    this.ended = true;
    const reason = this.closeReason || (ctx.shuttingDown() ? 'shutdown' : 'closed');
    // flow.start's fields in its order, then flow.end's own; spelled out, not spread (a spread
    // of flow.start was three quarters of this function's time in a CPU profile)
    const s = startEvent;
    const end: FlowEnd = {
      v: s.v,
      event: 'flow.end',
      flowId: s.flowId,
      nodeId: s.nodeId,
      listener: s.listener,
      mode: s.mode,
      src: s.src,
      dst: s.dst,
      sni: this.tunnelSni || s.sni,
      connectHost: s.connectHost,
      protocol: s.protocol,
      verdict: s.verdict,
      ruleId: s.ruleId,
      reason: s.reason,
      detail: s.detail,
      policyVersion: s.policyVersion,
      startTime: s.startTime,
      wouldDeny: s.wouldDeny,
      echGrease: s.echGrease,
      traceparent: s.traceparent,
      bytesUp,
      bytesDown,
      durationMs: Date.now() - this.started,
      closeReason: reason,
      traceId: this.spans.traceId,
    };
    ctx.report(encodeFlowEnd(this.tunnelSni ? encodeFlowStart({ ...s, sni: this.tunnelSni }) : this.startJson, end));
    if (bytesUp) ctx.metrics.bytes.add(bytesUp, { direction: 'up' });
    if (bytesDown) ctx.metrics.bytes.add(bytesDown, { direction: 'down' });
    this.spans.end({ sni: end.sni, connectHost: end.connectHost, verdict: end.verdict, ruleId: end.ruleId, reason: end.reason, dst: end.dst, bytesUp, bytesDown, closeReason: reason });
    // the canonical log line of a flow: one per connection, at its end, with everything
    const line = ctx.flowEndLine;
    if (line) {
      if (line.enabled()) line.write(flowEndFields(end));
    } else (ctx.flowLog ?? ctx.log).info({ flowId: this.flowId, sni: end.sni, connectHost: end.connectHost || undefined, verdict: end.verdict, ruleId: end.ruleId || undefined, reason: end.reason, dst: end.dst, src: end.src, protocol: end.protocol, closeReason: reason, bytesUp, bytesDown, durationMs: end.durationMs, traceId: end.traceId || undefined }, 'flow.end');
  }

  async ask(sni: string, connectHost: string, span: ReturnType<FlowTrace['stage']>): Promise<Verdict> {
    const { ctx, learned } = this;
    const decideStarted = performance.now();
    const input: DecideInput = { sni, connectHost, port: learned.port, sourceIp: this.srcAddress, protocol: learned.protocol, ech: learned.ech, echGrease: learned.echGrease, noNameReason: sni || connectHost ? '' : learned.noNameReason, listener: ctx.listener.name, flowId: this.flowId, traceparent: FlowTrace.propagate(span) };
    const verdict = await ctx.decider.decide(input);
    this.input = input;
    this.verdict = verdict;
    ctx.metrics.decide.record((performance.now() - decideStarted) / 1000, { source: verdict.source });
    ctx.metrics.l1.add(1, { result: verdict.source === 'l1' ? 'hit' : 'miss' });
    endStage(span, { sni, connectHost, verdict: verdict.verdict, ruleId: verdict.ruleId, reason: verdict.reason, source: verdict.source, policyVersion: verdict.policyVersion });
    return verdict;
  }

  /** The express lane's decision: the route's L1 verdict, counted and traced as an L1 hit. */
  repeat(verdict: Verdict): void {
    const { ctx, learned } = this;
    const span = this.spans.stage('edge.decide');
    ctx.decider.countL1Hit();
    ctx.metrics.decide.record(0, { source: 'l1' });
    ctx.metrics.l1.add(1, { result: 'hit' });
    endStage(span, { sni: learned.sni, connectHost: '', verdict: verdict.verdict, ruleId: verdict.ruleId, reason: verdict.reason, source: 'l1', policyVersion: verdict.policyVersion, express: true });
  }

  /** Allowed, but the upstream could not be had: flow.start says why, and what the client gets. */
  unreachable(verdict: Verdict, conn: Extract<ConnectResult, { ok: false }>): { refuse: Buffer; reason: string } {
    const { learned, dstName } = this;
    // Allowed by policy but refused or failed here: the record says why (private-destination, dns-failed...).
    const refusedHere = conn.reason === 'private-destination' || conn.reason === 'sni-mismatch';
    this.begin(refusedHere ? { ...verdict, verdict: 'deny', reason: conn.reason, detail: conn.detail } : { ...verdict, detail: `${verdict.detail}; ${conn.detail}` }, dstName);
    this.closeReason = conn.reason;
    return { refuse: learned.replies.unreachable(conn.reason, conn.detail), reason: conn.reason };
  }

  /** decide → connect: an upstream (flow.start written), or what to refuse the client with (closeReason set). */
  async decideAndConnect(dial?: ConnectOptions['dial']): Promise<Decided> {
    const { ctx, learned, dstName } = this;
    const refuse = (reply: Buffer, reason: string): Decided => {
      this.closeReason = reason;
      return { refuse: reply, reason };
    };
    if (learned.refusal) {
      this.begin({ verdict: 'deny', ruleId: '', reason: learned.refusal.reason, detail: learned.refusal.detail, policyVersion: ctx.decider.policyVersion, wouldDeny: false }, dstName);
      return refuse(learned.refusal.reply, learned.refusal.reason);
    }
    const verdict = await this.ask(learned.sni, learned.connectHost, this.spans.stage('edge.decide'));
    if (verdict.verdict === 'deny') {
      this.begin(verdict, dstName);
      return refuse(learned.protocol === 'tls' || learned.tunnel ? learned.replies.denied(verdict.reason, `${dstName || 'this connection'} denied (${verdict.reason})`) : Buffer.alloc(0), 'denied');
    }
    const name = learned.connectHost || learned.sni;
    const port = learned.port;
    if (!name && !learned.originalDst) {
      // Allowed without a name: an SNI listener has nowhere to send it.
      this.begin({ ...verdict, verdict: 'deny', reason: 'no-destination', detail: `${verdict.detail}; but no name to connect to` }, '');
      return refuse(Buffer.alloc(0), 'no-destination');
    }
    const connectSpan = this.spans.stage('edge.connect', { name, port });
    // every key written out, absent ones undefined: conditional spreads make V8 build the object slowly
    const conn = await connectUpstream(name, port, { resolve: ctx.resolve, timeoutMs: ctx.connectTimeoutMs, guard: ctx.guard, allowPrivate: verdict.allowPrivate, dns: ctx.dns, originalAddress: learned.originalDst?.address, dial });
    endStage(connectSpan, conn.ok ? { dst: conn.address } : { reason: conn.reason, detail: conn.detail });
    if (!conn.ok) return this.unreachable(verdict, conn);
    if (conn.socket) ctx.track(conn.socket);
    this.begin(verdict, `${conn.address}:${port}`);
    return { upstream: conn.socket, address: conn.address };
  }
}

/**
 * `refusedBy`: the listener already refused this connection (a connection limit); it still gets
 * its pair of flow events, and the client a plain close.
 */
export async function handleFlow(client: Socket, ctx: FlowContext, refusedBy?: string): Promise<void> {
  const core = new FlowCore(ctx);
  ctx.track(client);
  client.on('error', (err: NodeJS.ErrnoException) => {
    core.closeReason ||= `client-error:${err.code ?? 'unknown'}`;
  });
  /** bytes of our own CONNECT/SOCKS success reply, not relayed data */
  let established = 0;
  const endFlow = (upstream?: Socket, relayed?: { bytesUp: number; bytesDown: number }): void => {
    if (relayed) return core.end(relayed.bytesUp, relayed.bytesDown);
    core.end(upstream?.bytesWritten ?? 0, upstream ? client.bytesWritten - established : 0);
  };

  // sniff (unless the listener already refused the connection)
  const sniffSpan = refusedBy ? undefined : core.spans.stage('edge.sniff');
  const learned: Intake = refusedBy ? refusedIntake(refusedBy) : await intake(client, ctx.listener, ctx.listener.sniffTimeoutMs ?? ctx.sniffTimeoutMs);
  core.sniffed(learned, refusedBy, sniffSpan, client.remoteAddress ?? '', client.remotePort ?? 0);

  const decided = await core.decideAndConnect();
  if ('refuse' in decided) {
    if (client.closed) return endFlow();
    client.once('close', () => endFlow());
    if (client.destroyed) return;
    client.resume(); // discard whatever else the client sends
    if (decided.refuse.length) client.end(decided.refuse);
    else client.end();
    client.setTimeout(2_000, () => client.destroy());
    return;
  }
  const upstream = decided.upstream as Socket; // handleFlow dials with Node sockets
  if (client.destroyed) {
    core.closeReason = 'client-closed';
    upstream.destroy();
    endFlow(upstream);
    return;
  }
  if (learned.replies.established) {
    established = learned.replies.established.length;
    client.write(learned.replies.established);
  }

  // relay: the sniffed bytes first, unchanged, then both directions with half-close. Through a
  // CONNECT/SOCKS tunnel a ClientHello must name the host that was decided (domain-fronting guard).
  const relaySpan = core.spans.stage('edge.relay');
  const gate = learned.tunnel
    ? (first: Buffer[]) =>
        checkTunnelHello(client, first, Date.now() + (ctx.listener.sniffTimeoutMs ?? ctx.sniffTimeoutMs), async (sni) => {
          core.tunnelSni = sni;
          if (sni === learned.connectHost) return undefined;
          if (ctx.requireSniMatch) return 'sni-mismatch';
          const v = await core.ask(sni, '', core.spans.stage('edge.decide', { tunnel: true }));
          return v.verdict === 'allow' ? undefined : 'sni-denied';
        })
    : undefined;
  // The native relay takes the flow now, or (tunnels) once the ClientHello check has passed.
  // Bytes the JavaScript relay already moved (a tunnel's reply, a banner) are added to its counts.
  const native = ctx.nativeRelay;
  const toNative = native
    ? (first: Buffer[]): boolean => {
        if (client.writableLength > 0 || upstream.writableLength > 0) return false;
        const upBefore = upstream.bytesWritten;
        const downBefore = client.bytesWritten - established;
        const handed = handOff(client);
        const adopted = native.adopt(client, upstream, first, ctx.idleTimeoutMs, (end) => {
          core.closeReason ||= end.reason;
          const counts = { bytesUp: upBefore + end.bytesUp, bytesDown: downBefore + end.bytesDown };
          endStage(relaySpan, counts);
          endFlow(undefined, counts);
          handed.ended();
        });
        if (!adopted) handed.cancel();
        return adopted;
      }
    : undefined;
  if (!gate && toNative?.(learned.forward)) {
    learned.forward = [];
    return;
  }
  relay(
    client,
    upstream,
    learned.forward,
    ctx.idleTimeoutMs,
    (reason) => {
      core.closeReason ||= reason;
    },
    () => {
      endStage(relaySpan, { bytesUp: upstream.bytesWritten, bytesDown: client.bytesWritten - established });
      endFlow(upstream);
    },
    gate,
    toNative,
  );
  // the sniffed bytes are written (or copied by the gate): do not keep them for the flow's life
  learned.forward = [];
}

/**
 * A connection the relay thread accepted and sniffed (native intake, SNI listeners): the same
 * stages as handleFlow, with no Node socket for the client. The thread holds the client's bytes;
 * a refusal or the upstream goes back to it. A hello the express lane took goes on without a
 * promise (expressFlow). `onClosed` runs once the thread has closed the client; `onError` gets
 * what a stage threw (a bug, not the client's doing).
 */
export function handleNativeFlow(client: NativeClient, ctx: FlowContext, refusedBy: string | undefined, onClosed: () => void, onError: (err: unknown) => void): void {
  const core = new FlowCore(ctx);
  const ending = new NativeEnding(core, client, onClosed);
  const sniffSpan = refusedBy ? undefined : core.spans.stage('edge.sniff');
  if (refusedBy) {
    decideNative(core, ending, client, ctx, refusedIntake(refusedBy), refusedBy, sniffSpan).catch(onError);
    return;
  }
  client.onSniffed((sniffed) => {
    if (sniffed.route === undefined) {
      decideNative(core, ending, client, ctx, learnedFrom(sniffed, ctx.listener.upstreamPort), undefined, sniffSpan).catch(onError);
      return;
    }
    try {
      expressFlow(core, ending, client, ctx, ctx.express?.get(sniffed.route), sniffSpan);
    } catch (err) {
      onError(err);
    }
  });
}

/**
 * flow.end of a native-intake flow: once the thread has closed the client and flow.start is out.
 * The thread's end report can come first (a client gone while the decision was pending, or the
 * thread's own connect answered in the same batch as the end): flow.end then waits for flow.start.
 */
class NativeEnding {
  relaySpan: ReturnType<FlowTrace['stage']> = undefined;
  private closed: RelayEnd | undefined;

  constructor(
    private readonly core: FlowCore,
    client: NativeClient,
    onClosed: () => void,
  ) {
    client.onEnd((end) => {
      core.closeReason ||= end.reason;
      this.closed = end;
      this.report();
      onClosed();
    });
  }

  report(): void {
    const closed = this.closed;
    if (!closed || !this.core.startEvent) return;
    endStage(this.relaySpan, { bytesUp: closed.bytesUp, bytesDown: closed.bytesDown });
    this.core.end(closed.bytesUp, closed.bytesDown);
  }
}

/** What the thread read of a hello it handed to JS. */
function learnedFrom({ bytes, how }: Sniffed, port: number): Intake {
  const r = readClientHello(bytes);
  // the thread stops where the reader would: need-more here is a close, a timeout or a full buffer
  const learned = fromHello(r.kind !== 'need-more' ? r : how === 'full' ? { kind: 'too-large' } : how === 'timeout' ? { kind: 'timeout' } : { kind: 'closed' }, bytes);
  learned.port = port;
  learned.forward = [];
  return learned;
}

/** decide → connect → relay for a native-intake flow the express lane did not take. */
async function decideNative(core: FlowCore, ending: NativeEnding, client: NativeClient, ctx: FlowContext, learned: Intake, refusedBy: string | undefined, sniffSpan: ReturnType<FlowTrace['stage']>): Promise<void> {
  core.sniffed(learned, refusedBy, sniffSpan, client.remoteAddress, client.remotePort);
  // one checked address: the thread connects (no Node socket at all); several: Happy Eyeballs in Node, then attach
  const dial = async (address: string, port: number, timeoutMs: number): Promise<ConnectResult> => dialed(address, port, timeoutMs, await client.connect(address, port, timeoutMs, ctx.idleTimeoutMs));
  const decided = await core.decideAndConnect(dial);
  if ('refuse' in decided) {
    client.refuse(decided.refuse, decided.reason !== 'fd-limit');
    return ending.report();
  }
  ending.relaySpan = core.spans.stage('edge.relay');
  const upstream = decided.upstream;
  if (!upstream && !refusedBy) offerRoute(core, client, ctx, decided.address);
  if (upstream && !client.attach(upstream, ctx.idleTimeoutMs)) {
    core.closeReason ||= 'client-closed';
    upstream.destroy();
    client.refuse(null, false);
  }
  ending.report();
}

/** What the thread's own connect to one address came to, as connectUpstream says it. */
function dialed(address: string, port: number, timeoutMs: number, r: { ok: true } | { ok: false; code: string }): ConnectResult {
  if (r.ok) return { ok: true, address };
  if (r.code === 'ETIMEDOUT') return { ok: false, reason: 'connect-timeout', detail: `no answer from ${address} port ${port} within ${timeoutMs} ms` };
  return { ok: false, reason: r.code === 'ECONNREFUSED' ? 'connect-refused' : 'connect-failed', detail: `${address}:${port}: ${r.code}` };
}

/**
 * The express lane's flow: the relay matched a route and is connecting to its address. The same
 * stages, spans and records as an L1 hit, without a promise: each step runs from the relay's
 * report of it.
 */
function expressFlow(core: FlowCore, ending: NativeEnding, client: NativeClient, ctx: FlowContext, route: Route | undefined, sniffSpan: ReturnType<FlowTrace['stage']>): void {
  const port = ctx.listener.upstreamPort;
  if (!route) {
    // cannot happen (routes are known for a generation after they are cleared): never relay unaudited
    core.sniffed(namedHello('', false, port), undefined, sniffSpan, client.remoteAddress, client.remotePort);
    core.begin({ verdict: 'deny', ruleId: '', reason: 'policy-unavailable', detail: 'express route unknown', policyVersion: ctx.decider.policyVersion, wouldDeny: false }, '');
    core.closeReason = 'policy-unavailable';
    client.kill();
    return ending.report();
  }
  if (ctx.express) ctx.express.taken++;
  core.sniffed(namedHello(route.sni, route.ech, port), undefined, sniffSpan, client.remoteAddress, client.remotePort);
  core.repeat(route.verdict);
  const connectSpan = core.spans.stage('edge.connect', { name: route.sni, port });
  client.onConnected((outcome) => {
    const conn = dialed(route.address, port, ctx.connectTimeoutMs, outcome);
    endStage(connectSpan, conn.ok ? { dst: conn.address } : { reason: conn.reason, detail: conn.detail });
    if (conn.ok) {
      core.begin(route.verdict, `${route.address}:${port}`);
      ending.relaySpan = core.spans.stage('edge.relay');
    } else client.refuse(core.unreachable(route.verdict, conn).refuse, true);
    ending.report();
  });
}

/**
 * After a flow the thread connected to one checked address: while L1 and the name's DNS answer
 * hold, the relay may repeat the decision for the same client, listener and hello (express.ts).
 */
function offerRoute(core: FlowCore, client: NativeClient, ctx: FlowContext, address: string): void {
  const { learned, input, verdict } = core;
  if (!ctx.express || !input || !verdict || verdict.verdict !== 'allow' || learned.outcome !== 'sni_found' || learned.connectHost || learned.refusal) return;
  const held = ctx.decider.heldVerdict(input, verdict);
  if (!held) return;
  const ttlMs = Math.min(held.freshMs, answerFreshFor(learned.sni, ctx.resolve, ctx.dns));
  ctx.express.add(client.listener, client.remoteAddress, { verdict: held.verdict, sni: learned.sni, ech: learned.ech, address, port: learned.port }, ttlMs, ctx.idleTimeoutMs, ctx.connectTimeoutMs);
}

const kHandOff = Symbol('portcullis.handoff');
type HandOff = { ended: boolean; waiting: (() => void)[] };
type HandOffSocket = Socket & { [kHandOff]?: HandOff };

/**
 * Runs `fn` once the flow that `client` belongs to has ended: when the socket closes, or, for a
 * flow handed to the native relay (whose Node socket closes at the hand-off), when the relay ends it.
 */
export function onFlowClosed(client: Socket, fn: () => void): void {
  client.on('close', () => {
    const h = (client as HandOffSocket)[kHandOff];
    if (h && !h.ended) h.waiting.push(fn);
    else fn();
  });
}

function handOff(client: Socket): { ended(): void; cancel(): void } {
  const h: HandOff = { ended: false, waiting: [] };
  (client as HandOffSocket)[kHandOff] = h;
  return {
    ended: () => {
      h.ended = true;
      for (const fn of h.waiting.splice(0)) fn();
    },
    cancel: () => {
      delete (client as HandOffSocket)[kHandOff];
    },
  };
}

/** Outcome of the tunnel check: pass the bytes on, or refuse with a reason. */
type GateResult = { pass: Buffer[] } | { refuse: string };

/**
 * Reads the first client bytes inside a tunnel. Not TLS (SSH, SMTP...): pass at once. A ClientHello:
 * once complete, `check(sni)` says whether it may pass. Never waits for a silent client.
 */
function checkTunnelHello(client: Socket, first: Buffer[], deadline: number, check: (sni: string) => Promise<string | undefined>): Promise<GateResult> {
  return new Promise((resolve) => {
    const reader = new ClientHelloReader();
    const chunks = [...first];
    let timer: NodeJS.Timeout | undefined;
    const finish = (r: GateResult): void => {
      clearTimeout(timer);
      client.off('data', onData);
      client.off('end', onEnd);
      resolve(r);
    };
    const judge = (): boolean => {
      const r = reader.result;
      if (r.kind === 'need-more') {
        timer ??= setTimeout(() => finish({ refuse: 'sniff-timeout' }), Math.max(0, deadline - Date.now()));
        return false;
      }
      client.off('data', onData);
      client.pause();
      if (r.kind === 'not-tls') finish({ pass: chunks });
      else if (r.kind !== 'hello') finish({ refuse: r.kind === 'too-large' ? 'hello-too-large' : 'invalid-hello' });
      else if (r.hello.sni.kind !== 'name') finish({ pass: chunks });
      else check(r.hello.sni.name).then((refusal) => finish(refusal ? { refuse: refusal } : { pass: chunks }), () => finish({ refuse: 'policy-unavailable' }));
      return true;
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      reader.push(chunk);
      judge();
    };
    // the client half-closed before finishing a hello: pass what it sent, the server will judge it
    const onEnd = (): void => finish({ pass: chunks });
    for (const c of first) reader.push(c);
    if (first.length && judge()) return;
    client.on('data', onData);
    client.once('end', onEnd);
    client.resume();
  });
}

/**
 * Relays both ways; an end on one side becomes an end (FIN) on the other, not a full close.
 * With a gate, the upstream's bytes flow at once (server-speaks-first protocols) while the
 * client's wait for the gate's verdict.
 *
 * Not stream.pipe() and no closures per flow: one Relay object per flow, found from either
 * socket through a symbol, and module-level listeners shared by every flow; one shared idle
 * sweep instead of a timer per socket. pipe() attaches seven listeners and its own state per
 * direction, socket.setTimeout re-arms a timer on every read and write, and a closure per
 * listener kept ~1.5 KB per idle flow alive (heap snapshots, `npm run bench -- idle`).
 */
export function relay(
  client: Socket,
  upstream: Socket,
  first: Buffer[],
  idleMs: number,
  setReason: (r: string) => void,
  done: () => void,
  gate?: (first: Buffer[]) => Promise<GateResult>,
  /** once the gate passes: hand the flow to the native relay (true: taken, the sockets are closing) */
  toNative?: (first: Buffer[]) => boolean,
): void {
  const r = new Relay(client, upstream, idleWatch(idleMs), setReason, done);
  (client as RelaySocket)[kRelay] = r;
  (upstream as RelaySocket)[kRelay] = r;
  // A client that vanished with an error (reset) takes the upstream with it. A clean close is
  // not one: its FIN already became the upstream's end(), and bytes still queued for the
  // upstream must reach it.
  client.on('close', onClientClose);
  upstream.on('close', onUpstreamClose);
  upstream.removeAllListeners('error'); // connect's placeholder
  upstream.on('error', onUpstreamError);
  client.on('error', onClientError);
  upstream.on('data', onUpstreamData);
  upstream.on('end', onUpstreamEnd);
  client.on('drain', onClientDrain);
  if (!gate) return r.start(first);
  gate(first).then((g) => {
    if ('pass' in g) {
      if (!r.upstreamWaiting && toNative?.(g.pass)) return r.detach();
      return r.start(g.pass);
    }
    setReason(g.refuse);
    r.watch.remove(r);
    upstream.destroy();
    client.end(ACCESS_DENIED_ALERT);
    client.setTimeout(2_000, () => client.destroy());
  }, () => client.destroy());
}

const kRelay = Symbol('portcullis.relay');
type RelaySocket = Socket & { [kRelay]?: Relay };

/** The state of one relayed flow; its own idle entry. */
class Relay {
  seen = 0;
  private open = 2;
  /** a direction paused until the other side drains */
  clientWaiting = false;
  upstreamWaiting = false;

  constructor(
    readonly client: Socket,
    readonly upstream: Socket,
    readonly watch: IdleWatch,
    readonly setReason: (r: string) => void,
    private readonly done: () => void,
  ) {
    // client activity covers both directions: reads are uploads, writes are downloads
    watch.add(this);
  }

  /** The client's first bytes to the upstream, then the client's side flows. */
  start(bytes: Buffer[]): void {
    const { client, upstream } = this;
    for (const b of bytes) upstream.write(b);
    if (client.readableEnded) {
      this.setReason('client-closed');
      upstream.end();
    } else {
      client.on('data', onClientData);
      client.on('end', onClientEnd);
      upstream.on('drain', onUpstreamDrain);
    }
    client.resume();
  }

  /** The native relay took the flow: the sockets' close events are no longer this relay's. */
  detach(): void {
    const { client, upstream } = this;
    this.watch.remove(this);
    client.off('close', onClientClose);
    client.off('error', onClientError);
    client.off('drain', onClientDrain);
    upstream.off('close', onUpstreamClose);
    upstream.off('error', onUpstreamError);
    upstream.off('data', onUpstreamData);
    upstream.off('end', onUpstreamEnd);
  }

  onIdle(): void {
    this.setReason('idle-timeout');
    this.client.destroy();
    this.upstream.destroy();
  }

  closed(): void {
    if (--this.open > 0) return;
    this.watch.remove(this);
    this.done();
  }
}

const relayOf = (s: Socket): Relay => (s as RelaySocket)[kRelay] as Relay;

function onClientClose(this: Socket, hadError: boolean): void {
  const r = relayOf(this);
  if (hadError) r.upstream.destroy();
  r.closed();
}
function onUpstreamClose(this: Socket): void {
  relayOf(this).closed();
}
function onUpstreamError(this: Socket, err: NodeJS.ErrnoException): void {
  const r = relayOf(this);
  r.setReason(`upstream-error:${err.code ?? 'unknown'}`);
  r.client.destroy();
}
function onClientError(this: Socket): void {
  relayOf(this).upstream.destroy();
}
// Each chunk is written on at once; the source pauses while the other side's buffer is full.
function onClientData(this: Socket, chunk: Buffer): void {
  const r = relayOf(this);
  r.seen = r.watch.tick;
  if (!r.upstream.write(chunk) && !r.upstream.destroyed) {
    r.clientWaiting = true;
    this.pause();
  }
}
function onUpstreamData(this: Socket, chunk: Buffer): void {
  const r = relayOf(this);
  r.seen = r.watch.tick;
  if (!r.client.write(chunk) && !r.client.destroyed) {
    r.upstreamWaiting = true;
    this.pause();
  }
}
function onUpstreamDrain(this: Socket): void {
  const r = relayOf(this);
  if (!r.clientWaiting) return;
  r.clientWaiting = false;
  r.client.resume();
}
function onClientDrain(this: Socket): void {
  const r = relayOf(this);
  if (!r.upstreamWaiting) return;
  r.upstreamWaiting = false;
  r.upstream.resume();
}
function onClientEnd(this: Socket): void {
  const r = relayOf(this);
  r.setReason('client-closed');
  r.upstream.end();
}
function onUpstreamEnd(this: Socket): void {
  const r = relayOf(this);
  r.setReason('upstream-closed');
  r.client.end();
}
