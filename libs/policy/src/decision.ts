// PolicyDecision: Decide, DecideStream and WatchPolicy over the active compiled profile,
// with the shared verdict cache in front of the (cheap, in-process) evaluation.
import * as grpc from '@grpc/grpc-js';
import type { Decision } from '@portcullis/fqdn-policy';
import type { DecideRequest__Output, DecideResponse, PolicyDecisionHandlers, PolicyVersionEvent } from '@portcullis/contracts';
import { context, ROOT_CONTEXT, SpanKind, trace, TraceFlags } from '@opentelemetry/api';
import type { Context } from '@opentelemetry/api';
import { grpcError, meter, tracingEnabled } from '@portcullis/platform';
import type { Logger } from '@portcullis/platform';
import type { ActivePolicy, ActiveVersion } from './active-policy';
import type { VerdictCache } from './verdict-cache';

export interface DecisionOptions {
  verdictTtlMs: number;
}

/** Every input the verdict may depend on, and nothing else. */
export function cacheKey(req: DecideRequest__Output, active: ActiveVersion): string {
  const name = req.connect_host || req.sni;
  const c = active.compiled;
  return `${name}|${c.usesPorts ? req.port : ''}|${c.usesSources ? req.source_ip : ''}|${req.ech ? (req.ech_grease ? 'g' : 'e') : ''}|${name ? '' : req.no_name_reason}`;
}

export function toResponse(d: Decision, version: number, ttlMs: number, cacheHit: boolean): DecideResponse {
  return {
    verdict: d.verdict === 'allow' ? 'VERDICT_ALLOW' : 'VERDICT_DENY',
    rule_id: d.ruleId,
    reason: d.reason,
    detail: d.detail,
    policy_version: version,
    cache_ttl_ms: ttlMs,
    would_deny: d.wouldDeny,
    would_deny_rule_id: d.wouldDenyRuleId,
    allow_private: [...d.allowPrivate],
    cache_hit: cacheHit,
  };
}

const tracer = trace.getTracer('portcullis-policy');
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The parent of a decision's span: the edge's edge.decide (sent in the request) or the gRPC call. */
function parentContext(traceparent: string): Context {
  const m = TRACEPARENT.exec(traceparent);
  if (!m) return context.active();
  return trace.setSpanContext(ROOT_CONTEXT, { traceId: m[1] as string, spanId: m[2] as string, traceFlags: parseInt(m[3] as string, 16) & TraceFlags.SAMPLED, isRemote: true });
}

/** Most distinct cached verdicts kept parsed (a profile has about as many as it has rules). */
const MAX_PARSED = 1_000;

export class Decider {
  private readonly m = meter();
  private readonly decisions = this.m.createCounter('portcullis_decisions_total', { description: 'Decisions answered, by verdict and reason' });
  private readonly cacheLookups = this.m.createCounter('portcullis_verdict_cache_total', { description: 'Shared verdict cache lookups' });
  /**
   * Verdicts carry no name, so a profile yields few distinct ones: each is turned into a response
   * and its cache text once, not per decision. Keyed by the engine's Decision (built once per
   * compiled profile) and, for cache hits, by the text read from Redis.
   */
  private readonly built = new WeakMap<Decision, { version: number; ttlMs: number; response: DecideResponse; text: string }>();
  private readonly parsed = new Map<string, DecideResponse>();

  constructor(
    private readonly active: ActivePolicy,
    private readonly cache: VerdictCache,
    private readonly opts: DecisionOptions,
  ) {}

  async decide(req: DecideRequest__Output): Promise<DecideResponse> {
    if (!tracingEnabled()) return this.evaluate(req);
    const parent = parentContext(req.traceparent);
    const span = tracer.startSpan('policy.decide', { kind: SpanKind.SERVER, attributes: { sni: req.sni, connectHost: req.connect_host, port: req.port, nodeId: req.node_id, flowId: req.flow_id } }, parent);
    try {
      const r = await context.with(trace.setSpan(parent, span), () => this.evaluate(req));
      span.setAttributes({ verdict: r.verdict === 'VERDICT_ALLOW' ? 'allow' : 'deny', ruleId: r.rule_id ?? '', reason: r.reason ?? '', cacheHit: r.cache_hit ?? false, policyVersion: Number(r.policy_version ?? 0) });
      return r;
    } finally {
      span.end();
    }
  }

  private async evaluate(req: DecideRequest__Output): Promise<DecideResponse> {
    const active = this.active.current;
    if (!active) throw grpcError(grpc.status.UNAVAILABLE, 'no policy loaded');
    const key = cacheKey(req, active);
    const hit = await this.cache.get(active.version, key);
    this.cacheLookups.add(1, { result: hit ? 'hit' : 'miss' });
    if (hit) {
      const cached = this.fromCache(hit);
      this.decisions.add(1, { verdict: cached.verdict === 'VERDICT_ALLOW' ? 'allow' : 'deny', reason: cached.reason ?? '' });
      return cached;
    }
    const decision = active.compiled.decide({
      name: req.connect_host || req.sni || undefined,
      port: req.port,
      sourceIp: req.source_ip || undefined,
      ech: req.ech,
      echGrease: req.ech_grease,
      noNameReason: req.no_name_reason || undefined,
    });
    const ttlMs = this.opts.verdictTtlMs;
    let b = this.built.get(decision);
    if (!b || b.version !== active.version || b.ttlMs !== ttlMs) {
      const response = toResponse(decision, active.version, ttlMs, false);
      b = { version: active.version, ttlMs, response, text: JSON.stringify(response) };
      this.built.set(decision, b);
    }
    this.decisions.add(1, { verdict: decision.verdict, reason: decision.reason });
    this.cache.set(active.version, key, b.text, ttlMs);
    return b.response;
  }

  /** The response for a cache entry's text (shared between calls: never modified). */
  private fromCache(text: string): DecideResponse {
    let r = this.parsed.get(text);
    if (!r) {
      r = { ...(JSON.parse(text) as DecideResponse), cache_hit: true };
      if (this.parsed.size >= MAX_PARSED) this.parsed.clear();
      this.parsed.set(text, r);
    }
    return r;
  }
}

/**
 * The PolicyDecision handlers, and `closeStreams` for shutdown: edges hold DecideStream and
 * WatchPolicy open for ever, so a graceful server shutdown must end them itself.
 */
export function decisionHandlers(decider: Decider, active: ActivePolicy, log: Logger): { handlers: PolicyDecisionHandlers; closeStreams(): void } {
  const streams = new Set<{ end(): void }>();
  const keep = (call: { end(): void; once(ev: string, fn: () => void): unknown }): void => {
    streams.add(call);
    call.once('close', () => streams.delete(call));
  };
  const versionEvent = (v: ActiveVersion): PolicyVersionEvent => ({ version: v.version, profile_name: v.stored.profileName, applied_at: v.stored.appliedAt });
  const handlers: PolicyDecisionHandlers = {
    Decide(call, callback) {
      decider.decide(call.request).then(
        (r) => callback(null, r),
        (err: grpc.ServiceError) => callback(err.code !== undefined ? err : grpcError(grpc.status.INTERNAL, String(err))),
      );
    },
    DecideStream(call) {
      keep(call);
      call.on('data', (msg) => {
        const id = msg.request_id;
        if (!msg.request) {
          call.write({ request_id: id, error: 'missing request' });
          return;
        }
        decider.decide(msg.request).then(
          (response) => call.write({ request_id: id, response }),
          (err: Error) => call.write({ request_id: id, error: err.message }),
        );
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
    WatchPolicy(call) {
      keep(call);
      const node = call.request.node_id;
      log.debug({ nodeId: node }, 'watch.start');
      const cur = active.current;
      if (cur) call.write(versionEvent(cur));
      const off = active.onChange((v) => call.write(versionEvent(v)));
      call.on('cancelled', off);
      call.on('close', off);
      call.on('error', off);
    },
  };
  return {
    handlers,
    closeStreams: () => {
      for (const c of streams) c.end();
      streams.clear();
    },
  };
}
