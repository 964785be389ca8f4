// The edge's decision client: L1 cache tagged with the policy version, one in-flight call per
// key shared by concurrent flows, a deadline on every call, and WatchPolicy to drop stale entries.
import type * as grpc from '@grpc/grpc-js';
import { LRUCache } from 'lru-cache';
import { loadContracts } from '@portcullis/contracts';
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

function fromResponse(r: DecideResponse__Output): Verdict {
  return {
    verdict: r.verdict === 'VERDICT_ALLOW' ? 'allow' : 'deny',
    ruleId: r.rule_id,
    reason: r.reason,
    detail: r.detail,
    policyVersion: r.policy_version,
    wouldDeny: r.would_deny,
    allowPrivate: r.allow_private,
    source: 'service',
  };
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
  private readonly pending = new Map<number, (res: DecideResponse__Output | undefined) => void>();
  readonly stats = { l1Hits: 0, l1Misses: 0, calls: 0, streamCalls: 0, unaryCalls: 0, failures: 0 };

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
  }

  private key(i: DecideInput): string {
    return `${i.connectHost || i.sni}|${i.port}|${i.sourceIp}|${i.ech ? (i.echGrease ? 'g' : 'e') : ''}|${i.connectHost || i.sni ? '' : i.noNameReason}`;
  }

  async decide(input: DecideInput): Promise<Verdict> {
    const key = this.key(input);
    const hit = this.l1.get(key);
    const now = Date.now();
    if (hit && hit.expires > now && hit.version >= this.version && this.l1Trusted(now)) {
      this.stats.l1Hits++;
      return hit.verdict;
    }
    this.stats.l1Misses++;
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const p = this.call(input, key).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private call(input: DecideInput, key: string): Promise<Verdict> {
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
    return this.ask(req).then((res) => {
      if (!res) {
        this.stats.failures++;
        return this.staleVerdict(key) ?? this.failVerdict();
      }
      const verdict = fromResponse(res);
      if (verdict.policyVersion > this.version) this.onVersion(verdict.policyVersion);
      if (res.cache_ttl_ms > 0 && verdict.policyVersion >= this.version) {
        this.l1.set(key, { verdict: { ...verdict, source: 'l1' }, version: verdict.policyVersion, expires: Date.now() + res.cache_ttl_ms });
      }
      return verdict;
    });
  }

  /**
   * One decision over the long-lived DecideStream (a unary call per flow tops out near 2,500/s
   * here; the stream carries far more). If the stream is broken, unary until it has had a
   * second to recover, or until a unary call is answered: the service is back, and all of a busy
   * edge's decisions as unary calls to a replica that just restarted (cold, every edge
   * reconnecting at once) is what gets them past their deadline. Resolves undefined when no
   * answer came within the deadline.
   */
  private ask(req: DecideRequest): Promise<DecideResponse__Output | undefined> {
    const stream = this.openStream();
    if (!stream) return this.unary(req, Date.now() + this.opts.decideTimeoutMs);
    this.stats.streamCalls++;
    const id = this.nextId++;
    const deadline = Date.now() + this.opts.decideTimeoutMs;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.opts.log.warn({ deadlineMs: this.opts.decideTimeoutMs }, 'decide timed out');
        resolve(undefined);
      }, this.opts.decideTimeoutMs);
      this.pending.set(id, (res) => {
        clearTimeout(timer);
        this.pending.delete(id);
        // The stream broke under this request: spend what is left of its deadline on a unary call.
        if (res === undefined && !this.closed && deadline - Date.now() > 5) this.unary(req, deadline).then(resolve);
        else resolve(res);
      });
      stream.write({ request_id: id, request: req });
    });
  }

  private openStream(): grpc.ClientDuplexStream<DecideStreamRequest, DecideStreamResponse__Output> | undefined {
    if (this.stream) return this.stream;
    if (this.closed || Date.now() < this.streamRetryAt) return undefined;
    const stream = this.client.DecideStream();
    this.stream = stream;
    this.streamOpenedAt = Date.now();
    stream.on('data', (msg: DecideStreamResponse__Output) => {
      const done = this.pending.get(msg.request_id);
      if (!done) return; // answered after its deadline
      if (msg.error || !msg.response) {
        this.opts.log.warn({ error: msg.error }, 'decide refused');
        done(msg.response ?? undefined);
      } else done(msg.response);
    });
    const broken = (err?: grpc.ServiceError): void => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      this.streamRetryAt = Date.now() + STREAM_RETRY_MS;
      if (err && !this.closed) this.opts.log.warn({ code: err.code, details: err.details }, 'decide stream broken; unary until it recovers');
      for (const done of [...this.pending.values()]) done(undefined);
    };
    stream.on('error', broken);
    stream.on('end', () => broken());
    return stream;
  }

  private unary(req: DecideRequest, deadline: number): Promise<DecideResponse__Output | undefined> {
    this.stats.unaryCalls++;
    return new Promise((resolve) => {
      this.client.Decide(req, { deadline }, (err, res) => {
        if (err) this.opts.log.warn({ code: err.code, details: err.details }, 'decide failed');
        // answered: the service is reachable, so the next decision may open the stream again
        else if (!this.stream) this.streamRetryAt = Math.min(this.streamRetryAt, this.streamOpenedAt + STREAM_REOPEN_MIN_MS);
        resolve(err ? undefined : res);
      });
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
    this.watch?.cancel();
    this.stream?.cancel();
    this.client.close();
  }
}
