// The edge's metrics and trace spans, named after the flow-event fields. Span work happens only
// when tracing is on (tracingEnabled); metric instruments are no-ops without metrics.listen.
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Attributes, Context, Span } from '@opentelemetry/api';
import { meter, tracingEnabled } from '@portcullis/platform';

const tracer = trace.getTracer('portcullis-edge');

export type SniffOutcome = 'sni_found' | 'sni_not_found' | 'not_tls' | 'too_large' | 'timeout' | 'invalid';

export class EdgeMetrics {
  private readonly m = meter();
  readonly flows = this.m.createCounter('portcullis_flows_total', { description: 'Flows decided, by listener, verdict and reason' });
  readonly sniff = this.m.createCounter('portcullis_sniff_total', { description: 'Sniff outcomes' });
  readonly decide = this.m.createHistogram('portcullis_decide_duration_seconds', {
    description: 'Time to a verdict, by where it came from',
    advice: { explicitBucketBoundaries: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1] },
  });
  readonly l1 = this.m.createCounter('portcullis_l1_cache_total', { description: 'Edge L1 verdict cache lookups' });
  readonly bytes = this.m.createCounter('portcullis_bytes_total', { description: 'Bytes relayed, up (client to server) and down' });

  constructor(gauges: { activeFlows(): number; queueDepth(): number; spoolBytes(): number; dropped(): number; policyVersion(): number; nodeId: string }) {
    this.m.createObservableGauge('portcullis_active_flows', { description: 'Open client connections' }).addCallback((r) => r.observe(gauges.activeFlows()));
    this.m.createObservableGauge('portcullis_audit_queue_depth', { description: 'Flow events waiting to be written to the stream' }).addCallback((r) => r.observe(gauges.queueDepth()));
    this.m.createObservableGauge('portcullis_spool_bytes', { description: 'Flow events waiting in the spool file' }).addCallback((r) => r.observe(gauges.spoolBytes()));
    this.m.createObservableCounter('portcullis_events_dropped_total', { description: 'Flow events dropped because every buffer was full' }).addCallback((r) => r.observe(gauges.dropped()));
    this.m.createObservableGauge('portcullis_policy_version', { description: 'Policy version this node enforces' }).addCallback((r) => r.observe(gauges.policyVersion(), { node: gauges.nodeId }));
  }
}

/** The spans of one flow: a root `edge.flow` and one child per stage. Inert when tracing is off. */
export class FlowTrace {
  private readonly root: Span | undefined;
  private readonly ctx: Context | undefined;

  constructor(attributes: Attributes) {
    if (!tracingEnabled()) return;
    // with a sampler that drops this flow, spans are non-recording but keep a trace context to propagate
    this.root = tracer.startSpan('edge.flow', { kind: SpanKind.SERVER, attributes });
    this.ctx = trace.setSpan(context.active(), this.root);
  }

  /** Starts a stage span (edge.sniff, edge.decide, edge.connect, edge.relay). */
  stage(name: string, attributes?: Attributes): Span | undefined {
    return this.root ? tracer.startSpan(name, { attributes }, this.ctx) : undefined;
  }

  /** W3C traceparent of a span, only when it is sampled (sampled-out flows record nothing). */
  static traceparent(span: Span | undefined): string | undefined {
    const sc = span?.spanContext();
    if (!sc || !(sc.traceFlags & 1)) return undefined;
    return `00-${sc.traceId}-${sc.spanId}-01`;
  }

  /**
   * W3C traceparent to propagate downstream, sampled or not: a sampled-out flag tells the policy
   * service (parent-based sampling) to record nothing for this flow either.
   */
  static propagate(span: Span | undefined): string {
    const sc = span?.spanContext();
    if (!sc || sc.traceId === '00000000000000000000000000000000') return '';
    return `00-${sc.traceId}-${sc.spanId}-${sc.traceFlags & 1 ? '01' : '00'}`;
  }

  get traceparent(): string | undefined {
    return FlowTrace.traceparent(this.root);
  }

  get traceId(): string {
    const sc = this.root?.spanContext();
    return sc && sc.traceFlags & 1 ? sc.traceId : '';
  }

  end(attributes: Attributes, error?: string): void {
    if (!this.root) return;
    this.root.setAttributes(attributes);
    if (error) this.root.setStatus({ code: SpanStatusCode.ERROR, message: error });
    this.root.end();
  }
}

export function endStage(span: Span | undefined, attributes?: Attributes): void {
  if (!span) return;
  if (attributes) span.setAttributes(attributes);
  span.end();
}
