// PolicyDecision: Decide, DecideStream and WatchPolicy over the active compiled profile,
// with the shared verdict cache in front of the (cheap, in-process) evaluation.
import * as grpc from '@grpc/grpc-js';
import type { Decision } from '@portcullis/fqdn-policy';
import { DECIDE_BATCH_HEADER } from '@portcullis/contracts';
import type { DecideRequest__Output, DecideResponse, DecideStreamRequest__Output, DecideStreamResponse, PolicyDecisionHandlers, PolicyVersionEvent } from '@portcullis/contracts';
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
const HIT = Object.freeze({ result: 'hit' });
const MISS = Object.freeze({ result: 'miss' });
/** Most decisions per DecideStream message, each way (the service's answer to a longer batch refuses the rest) */
export const MAX_DECIDE_BATCH = 1_024;
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The parent of a decision's span: the edge's edge.decide (sent in the request) or the gRPC call. */
function parentContext(traceparent: string): Context {
  const m = TRACEPARENT.exec(traceparent);
  if (!m) return context.active();
  return trace.setSpanContext(ROOT_CONTEXT, { traceId: m[1] as string, spanId: m[2] as string, traceFlags: parseInt(m[3] as string, 16) & TraceFlags.SAMPLED, isRemote: true });
}

/**
 * Responses are shared by every decision with the same verdict: frozen, so that none is changed
 * in place, and so that the decision codec may encode each once (it reuses frozen ones' bytes).
 */
function frozen(r: DecideResponse): DecideResponse {
  if (r.allow_private) Object.freeze(r.allow_private);
  return Object.freeze(r);
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

  /**
   * `decide` without a promise per decision (the DecideStream path): `done` is called once, maybe
   * synchronously. With tracing on, the promise form (which carries the span's context).
   */
  decideTo(req: DecideRequest__Output, done: (err: Error | null, res?: DecideResponse) => void): void {
    if (tracingEnabled()) {
      this.decide(req).then((r) => done(null, r), done);
      return;
    }
    const active = this.active.current;
    if (!active) {
      done(grpcError(grpc.status.UNAVAILABLE, 'no policy loaded'));
      return;
    }
    const key = cacheKey(req, active);
    this.cache.lookup(active.version, key, (hit) => {
      let r: DecideResponse;
      try {
        r = this.answer(req, active, key, hit);
      } catch (err) {
        done(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      done(null, r);
    });
  }

  private async evaluate(req: DecideRequest__Output): Promise<DecideResponse> {
    const active = this.active.current;
    if (!active) throw grpcError(grpc.status.UNAVAILABLE, 'no policy loaded');
    const key = cacheKey(req, active);
    return this.answer(req, active, key, await this.cache.get(active.version, key));
  }

  /** The answer once the shared cache has spoken (`hit`: its entry, undefined on a miss). */
  private answer(req: DecideRequest__Output, active: ActiveVersion, key: string, hit: string | undefined): DecideResponse {
    this.cacheLookups.add(1, hit ? HIT : MISS);
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
      const response = frozen(toResponse(decision, active.version, ttlMs, false));
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
      r = frozen({ ...(JSON.parse(text) as DecideResponse), cache_hit: true });
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
      // A client that reads batched answers says so; we say that we read batched decisions.
      const batching = call.metadata.get(DECIDE_BATCH_HEADER).length > 0;
      const md = new grpc.Metadata();
      md.set(DECIDE_BATCH_HEADER, String(MAX_DECIDE_BATCH));
      call.sendMetadata(md);
      // Answers found in one turn of the event loop (one MGET reply answers hundreds) go out
      // together: a message per answer was most of the replica's cost in grpc-js and http2.
      let answers: DecideStreamResponse[] = [];
      let scheduled = false;
      const flush = (): void => {
        scheduled = false;
        const a = answers;
        answers = [];
        if (a.length === 1) call.write(a[0] as DecideStreamResponse);
        else for (let i = 0; i < a.length; i += MAX_DECIDE_BATCH) call.write({ batch: a.slice(i, i + MAX_DECIDE_BATCH) });
      };
      const answer = (m: DecideStreamResponse): void => {
        if (!batching) {
          call.write(m);
          return;
        }
        answers.push(m);
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      };
      // the client half-closed: the call ends once every decision it sent is answered
      let ending = false;
      let outstanding = 0;
      const finish = (): void => {
        if (scheduled) flush();
        call.end();
      };
      const one = (id: number, request: DecideStreamRequest__Output['request']): void => {
        if (!request) {
          answer({ request_id: id, error: 'missing request' });
          return;
        }
        outstanding++;
        decider.decideTo(request, (err, response) => {
          outstanding--;
          answer(err ? { request_id: id, error: err.message } : { request_id: id, response });
          // the last one outstanding: nothing more can join this batch, so no wait for the turn's end
          if (outstanding === 0) {
            if (ending) finish();
            else if (scheduled) flush();
          }
        });
      };
      call.on('data', (msg: DecideStreamRequest__Output) => {
        const batch = msg.batch;
        // a message is one decision, a batch of them, or both
        if (msg.request || batch.length === 0) one(msg.request_id, msg.request);
        for (let i = 0; i < batch.length; i++) {
          const e = batch[i] as DecideStreamRequest__Output;
          if (i < MAX_DECIDE_BATCH) one(e.request_id, e.request);
          else answer({ request_id: e.request_id, error: `batch longer than ${MAX_DECIDE_BATCH} decisions` });
        }
      });
      call.on('end', () => {
        ending = true;
        if (outstanding === 0) finish();
      });
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
