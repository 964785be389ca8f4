// The edge's decision client: L1 cache tagged with the policy version, one in-flight call per
// key shared by concurrent flows, a deadline on every call, and WatchPolicy to drop stale entries.
import * as grpc from '@grpc/grpc-js';
import { LRUCache } from 'lru-cache';
import { DECIDE_BATCH_HEADER, loadContracts } from '@portcullis/contracts';
import type { DecideRequest, DecideResponse__Output, DecideStreamRequest, DecideStreamResponse__Output, PolicyDecisionClient, PolicyVersionEvent__Output } from '@portcullis/contracts';
import { clientChannel } from '@portcullis/platform';
import type { Logger, TlsFiles } from '@portcullis/platform';

export interface Verdict {
  verdict: 'allow' | 'deny';
  ruleId: string;
  reason: string;
  detail: string;
  policyVersion: number;
  wouldDeny: boolean;
  allowPrivate: string[];
  /** Where the verdict came from */
  source: 'l1' | 'service' | 'stale' | 'fail-closed' | 'fail-open';
}

export interface DecideInput {
  sni: string;
  connectHost: string;
  port: number;
  sourceIp: string;
  protocol: string;
  ech: boolean;
  echGrease: boolean;
  noNameReason: string;
  listener: string;
  flowId: string;
  /** W3C traceparent of the flow's edge.decide span ('' when not traced) */
  traceparent: string;
}

interface L1Entry {
  /** the verdict as an L1 hit returns it (source 'l1'); treated as immutable */
  verdict: Verdict;
  version: number;
  expires: number;
}

/** How long L1 keeps answering after the watch stream broke (a reconnect usually takes less). */
const WATCH_GRACE_MS = 1_000;
/** After the DecideStream broke: unary calls for this long before a new stream is tried (unless the service answers first). */
const STREAM_RETRY_MS = 1_000;
/** Streams are opened at most this often (a path that answers unary calls but breaks streams must not cost one per decision). */
const STREAM_REOPEN_MIN_MS = 100;
/**
 * The decision channel's reconnect back-off ceiling. While the channel waits out its back-off,
 * every decision fails fast and the flow is refused (failMode closed) although the service may be
 * back: the shared client default (2 s) meant up to 2.4 s of refusals after a restart.
 */
const RECONNECT_BACKOFF_MAX_MS = 500;
/** Most decisions we put in one DecideStream message (fewer if the service announces fewer). */
const MAX_BATCH = 256;

type Answer = (res: DecideResponse__Output | undefined) => void;

/** A decision sent on the stream and not answered yet (also its DecideStreamRequest: id and request). */
interface Pending {
  request_id: number;
  request: DecideRequest;
  /** performance.now() past which it is given up */
  deadline: number;
  done: Answer;
}

/** The verdicts of a service answer, as returned (source 'service') and as kept in L1 (source 'l1'). */
interface Verdicts {
  service: Verdict;
  l1: Verdict;
}

/**
 * Verdicts by answer: the stream's decoder hands identical answers out as one frozen object (a
 * profile has few distinct verdicts), so each becomes a Verdict once, not once per decision.
 */
const verdictsOf = new WeakMap<DecideResponse__Output, Verdicts>();

function fromResponse(r: DecideResponse__Output): Verdicts {
  const known = verdictsOf.get(r);
  if (known) return known;
  const service: Verdict = {
    verdict: r.verdict === 'VERDICT_ALLOW' ? 'allow' : 'deny',
    ruleId: r.rule_id,
    reason: r.reason,
    detail: r.detail,
    policyVersion: r.policy_version,
    wouldDeny: r.would_deny,
    allowPrivate: r.allow_private,
    source: 'service',
  };
  const v = { service, l1: { ...service, source: 'l1' as const } };
  // only a frozen answer is known not to change
  if (Object.isFrozen(r)) verdictsOf.set(r, v);
  return v;
}

export class DecisionClient {
  private readonly client: PolicyDecisionClient;
  private readonly l1: LRUCache<string, L1Entry>;
  private readonly inflight = new Map<string, Promise<Verdict>>();
  private version = 0;
  /** when the current version replaced the previous one (entries of older versions are stale since then) */
  private versionChangedAt = 0;
  private watch: grpc.ClientReadableStream<PolicyVersionEvent__Output> | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  /** when the WatchPolicy stream last delivered (its first event) or 0 while it is down */
  private watchUp = false;
  /** since when we have not been hearing about policy versions (0: we are) */
  private watchDownSince = 0;
  private closed = false;
  private stream: grpc.ClientDuplexStream<DecideStreamRequest, DecideStreamResponse__Output> | undefined;
  /** while the stream is down: when the next one may be opened */
  private streamRetryAt = 0;
  private streamOpenedAt = 0;
  private nextId = 1;
  /** in id order, hence in deadline order (one timer sweeps the expired ones from the front) */
  private readonly pending = new Map<number, Pending>();
  private sweepTimer: NodeJS.Timeout | undefined;
  /** decisions per message the current stream's service reads (0: one per message, it predates batches) */
  private streamBatch = 0;
  /** decisions to send together at the end of this turn of the event loop */
  private outbox: DecideStreamRequest[] = [];
  private flushScheduled = false;
  readonly stats = { l1Hits: 0, l1Misses: 0, calls: 0, streamCalls: 0, unaryCalls: 0, failures: 0 };
  /**
   * Runs when verdicts held so far may no longer hold: a new policy version, or the policy watch
   * lost (the edge's express routes repeat L1 verdicts, and go with them).
   */
  onInvalidate: (() => void) | undefined;

  constructor(
    private readonly opts: { address: string; nodeId: string; decideTimeoutMs: number; l1Size: number; failMode: 'closed' | 'open'; serveStaleMs: number; log: Logger; tls?: TlsFiles | undefined },
  ) {
    const { PolicyDecision } = loadContracts().portcullis.v1;
    // round_robin: with a target naming several replicas (dns:, ipv4:) a dead one is skipped.
    const channel = clientChannel(opts.tls);
    this.client = new PolicyDecision(opts.address, channel.credentials, {
      ...channel.options,
      'grpc.max_reconnect_backoff_ms': RECONNECT_BACKOFF_MAX_MS,
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
    });
    this.l1 = new LRUCache({ max: Math.max(1, opts.l1Size) });
  }

  get policyVersion(): number {
    return this.version;
  }

  /** Hearing about policy versions: the WatchPolicy stream is up. */
  get connected(): boolean {
    return this.watchUp;
  }

  /**
   * L1 entries are only as fresh as our knowledge of the policy version. While the watch stream
   * is down (the replica died) a new version may be out there: after a short grace, L1 stops
   * answering and every decision goes back to the service (or to failMode / serveStaleMs).
   */
  private l1Trusted(now: number): boolean {
    return this.watchDownSince === 0 || now - this.watchDownSince < WATCH_GRACE_MS;
  }

  start(): void {
    this.openWatch();
  }

  private openWatch(): void {
    if (this.closed) return;
    const stream = this.client.WatchPolicy({ node_id: this.opts.nodeId });
    this.watch = stream;
    stream.on('data', (e: PolicyVersionEvent__Output) => {
      this.watchUp = true;
      this.watchDownSince = 0;
      this.onVersion(e.version);
    });
    const retry = (): void => {
      if (this.closed || this.watch !== stream) return;
      this.watch = undefined;
      if (this.watchUp || this.watchDownSince === 0) this.watchDownSince = Date.now();
      this.watchUp = false;
      this.onInvalidate?.();
      this.watchTimer = setTimeout(() => this.openWatch(), 500);
    };
    stream.on('error', retry);
    stream.on('end', retry);
  }

  private onVersion(version: number): void {
    if (version === this.version) return;
    this.opts.log.info({ policyVersion: version, previous: this.version }, 'policy.version');
    this.version = version;
    // Entries of the old version stay, unreachable for normal hits (they are checked against the
    // version), so that serveStaleMs can still use them while the policy service is unreachable.
    this.versionChangedAt = Date.now();
    this.onInvalidate?.();
  }

  private key(i: DecideInput): string {
    return `${i.connectHost || i.sni}|${i.port}|${i.sourceIp}|${i.ech ? (i.echGrease ? 'g' : 'e') : ''}|${i.connectHost || i.sni ? '' : i.noNameReason}`;
  }

  /**
   * The L1 entry behind `verdict` (just given for `input`) and how much longer L1 answers with it
   * (ms): the entry's own expiry, while it is of the current version and the policy watch is up
   * (not its grace after a loss, when L1 stops answering within a second). undefined: L1 does
   * not hold it (a stale or fail-mode verdict, no caching, a newer version).
   */
  heldVerdict(input: DecideInput, verdict: Verdict): { verdict: Verdict; freshMs: number } | undefined {
    if (!this.watchUp || (verdict.source !== 'l1' && verdict.source !== 'service')) return undefined;
    const hit = this.l1.peek(this.key(input));
    if (!hit || hit.version < this.version) return undefined;
    const h = hit.verdict;
    const same = h === verdict || (h.verdict === verdict.verdict && h.ruleId === verdict.ruleId && h.reason === verdict.reason && h.policyVersion === verdict.policyVersion);
    const freshMs = hit.expires - Date.now();
    return same && freshMs > 0 ? { verdict: h, freshMs } : undefined;
  }

  /** A verdict L1 gave without a lookup here (the express lane repeating it): counted as a hit. */
  countL1Hit(): void {
    this.stats.l1Hits++;
  }

  decide(input: DecideInput): Promise<Verdict> {
    const key = this.key(input);
    const hit = this.l1.get(key);
    const now = Date.now();
    if (hit && hit.expires > now && hit.version >= this.version && this.l1Trusted(now)) {
      this.stats.l1Hits++;
      return Promise.resolve(hit.verdict);
    }
    this.stats.l1Misses++;
    const pending = this.inflight.get(key);
    if (pending) return pending;
    let resolve!: (v: Verdict) => void;
    let reject!: (err: unknown) => void;
    const p = new Promise<Verdict>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // shared before the call starts: its answer (even a synchronous one) removes it
    this.inflight.set(key, p);
    try {
      this.call(input, key, resolve);
    } catch (err) {
      this.inflight.delete(key);
      reject(err);
    }
    return p;
  }

  private call(input: DecideInput, key: string, resolve: (v: Verdict) => void): void {
    this.stats.calls++;
    const req: DecideRequest = {
      sni: input.sni,
      connect_host: input.connectHost,
      port: input.port,
      source_ip: input.sourceIp,
      protocol: input.protocol,
      ech: input.ech,
      ech_grease: input.echGrease,
      node_id: this.opts.nodeId,
      listener: input.listener,
      flow_id: input.flowId,
      no_name_reason: input.noNameReason,
      traceparent: input.traceparent,
    };
    this.ask(req, (res) => {
      this.inflight.delete(key);
      if (!res) {
        this.stats.failures++;
        resolve(this.staleVerdict(key) ?? this.failVerdict());
        return;
      }
      const verdicts = fromResponse(res);
      const verdict = verdicts.service;
      if (verdict.policyVersion > this.version) this.onVersion(verdict.policyVersion);
      if (res.cache_ttl_ms > 0 && verdict.policyVersion >= this.version) {
        this.l1.set(key, { verdict: verdicts.l1, version: verdict.policyVersion, expires: Date.now() + res.cache_ttl_ms });
      }
      resolve(verdict);
    });
  }

  /**
   * One decision over the long-lived DecideStream (a unary call per flow tops out near 2,500/s
   * here; the stream carries far more). If the stream is broken, unary until it has had a
   * second to recover, or until a unary call is answered: the service is back, and all of a busy
   * edge's decisions as unary calls to a replica that just restarted (cold, every edge
   * reconnecting at once) is what gets them past their deadline. Answers undefined when no
   * answer came within the deadline.
   *
   * Decisions asked in one turn of the event loop go out as one message when the service reads
   * batches (a message per decision was most of the client's cost in grpc-js, and the service's).
   */
  private ask(req: DecideRequest, done: Answer): void {
    const stream = this.openStream();
    if (!stream) {
      this.unary(req, Date.now() + this.opts.decideTimeoutMs, done);
      return;
    }
    this.stats.streamCalls++;
    const id = this.nextId++;
    const msg: Pending = { request_id: id, request: req, deadline: performance.now() + this.opts.decideTimeoutMs, done };
    this.pending.set(id, msg);
    this.sweepTimer ??= setTimeout(this.sweep, this.opts.decideTimeoutMs);
    // one per message to a service that predates batches, and at once when nothing else is in
    // flight (a quiet edge: no decision waits for the turn's end to be batched with none)
    if (this.streamBatch === 0 || (this.pending.size === 1 && !this.flushScheduled)) {
      stream.write(msg);
      return;
    }
    this.outbox.push(msg);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // after this turn's I/O callbacks: every flow decided in this turn rides in the message
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const out = this.outbox;
    this.outbox = [];
    // the stream broke meanwhile: its pending decisions went to unary calls already
    const stream = this.stream;
    if (!stream || out.length === 0) return;
    if (out.length === 1) stream.write(out[0] as DecideStreamRequest);
    else for (let i = 0; i < out.length; i += this.streamBatch) stream.write({ batch: out.slice(i, i + this.streamBatch) });
  };

  /** Gives up on the decisions past their deadline (the oldest first) and waits for the next one's. */
  private readonly sweep = (): void => {
    this.sweepTimer = undefined;
    const now = performance.now();
    let expired = 0;
    for (const [id, p] of this.pending) {
      if (p.deadline > now) {
        this.sweepTimer = setTimeout(this.sweep, Math.max(1, Math.ceil(p.deadline - now)));
        break;
      }
      this.pending.delete(id);
      expired++;
      p.done(undefined);
    }
    if (expired > 0) this.opts.log.warn({ deadlineMs: this.opts.decideTimeoutMs, decisions: expired }, 'decide timed out');
  };

  /** A stream answer: the pending decision gets it (or, refused, what is left of its deadline as a unary call). */
  private answer(msg: DecideStreamResponse__Output): void {
    const p = this.pending.get(msg.request_id);
    if (!p) return; // answered after its deadline (or the top of a batch message, id 0)
    this.pending.delete(msg.request_id);
    if (msg.error || !msg.response) {
      this.opts.log.warn({ error: msg.error }, 'decide refused');
      this.retryUnary(p);
    } else p.done(msg.response);
  }

  /** The stream failed this decision: spend what is left of its deadline on a unary call. */
  private retryUnary(p: Pending): void {
    const left = p.deadline - performance.now();
    if (!this.closed && left > 5) this.unary(p.request, Date.now() + left, p.done);
    else p.done(undefined);
  }

  private openStream(): grpc.ClientDuplexStream<DecideStreamRequest, DecideStreamResponse__Output> | undefined {
    if (this.stream) return this.stream;
    if (this.closed || Date.now() < this.streamRetryAt) return undefined;
    // we read batched answers; the service's headers say whether it reads batched decisions
    const md = new grpc.Metadata();
    md.set(DECIDE_BATCH_HEADER, String(MAX_BATCH));
    const stream = this.client.DecideStream(md);
    this.stream = stream;
    this.streamBatch = 0;
    this.streamOpenedAt = Date.now();
    stream.on('metadata', (headers: grpc.Metadata) => {
      const n = Number(headers.get(DECIDE_BATCH_HEADER)[0] ?? 0);
      if (this.stream === stream && Number.isInteger(n) && n >= 1) this.streamBatch = Math.min(MAX_BATCH, n);
    });
    stream.on('data', (msg: DecideStreamResponse__Output) => {
      this.answer(msg);
      const batch = msg.batch;
      for (let i = 0; i < batch.length; i++) this.answer(batch[i] as DecideStreamResponse__Output);
    });
    const broken = (err?: grpc.ServiceError): void => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      this.streamBatch = 0;
      this.outbox = [];
      this.streamRetryAt = Date.now() + STREAM_RETRY_MS;
      if (err && !this.closed) this.opts.log.warn({ code: err.code, details: err.details }, 'decide stream broken; unary until it recovers');
      const all = [...this.pending.values()];
      this.pending.clear();
      for (const p of all) this.retryUnary(p);
    };
    stream.on('error', broken);
    stream.on('end', () => broken());
    return stream;
  }

  private unary(req: DecideRequest, deadline: number, done: Answer): void {
    this.stats.unaryCalls++;
    this.client.Decide(req, { deadline }, (err, res) => {
      if (err) this.opts.log.warn({ code: err.code, details: err.details }, 'decide failed');
      // answered: the service is reachable, so the next decision may open the stream again
      else if (!this.stream) this.streamRetryAt = Math.min(this.streamRetryAt, this.streamOpenedAt + STREAM_REOPEN_MIN_MS);
      done(err ? undefined : res);
    });
  }

  /** serveStaleMs: a verdict that expired, or whose version was replaced, less than that long ago. */
  private staleVerdict(key: string): Verdict | undefined {
    if (this.opts.serveStaleMs <= 0) return undefined;
    const e = this.l1.get(key, { allowStale: true });
    if (!e) return undefined;
    const staleSince = e.version < this.version ? Math.min(e.expires, this.versionChangedAt) : e.expires;
    if (Date.now() - staleSince > this.opts.serveStaleMs) return undefined;
    return { ...e.verdict, source: 'stale', reason: 'serve-stale', detail: `policy unavailable; stale verdict of version ${e.version}: ${e.verdict.detail}` };
  }

  private failVerdict(): Verdict {
    const open = this.opts.failMode === 'open';
    return {
      verdict: open ? 'allow' : 'deny',
      ruleId: '',
      reason: open ? 'fail-open' : 'policy-unavailable',
      detail: open ? 'no verdict could be had; failMode open' : 'no verdict could be had; failMode closed',
      policyVersion: this.version,
      wouldDeny: false,
      allowPrivate: [],
      source: open ? 'fail-open' : 'fail-closed',
    };
  }

  close(): void {
    this.closed = true;
    if (this.watchTimer) clearTimeout(this.watchTimer);
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    this.watch?.cancel();
    this.stream?.cancel();
    this.client.close();
  }
}
