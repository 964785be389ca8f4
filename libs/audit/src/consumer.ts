// The audit consumer: reads the flow stream as a member of consumer group `audit`, writes each
// batch to the sink, and only then acknowledges it. Entries a dead consumer left pending are
// claimed after claimIdleMs. Delivery is at least once (an edge re-sends a batch whose reply was
// lost), so an event whose (event, flowId) this consumer wrote recently is dropped, not written.
import { decodeFlowEvent } from '@portcullis/flow-events';
import type { FlowEvent, FlowTransport, StreamEntry } from '@portcullis/flow-events';
import { trace } from '@opentelemetry/api';
import type { Link } from '@opentelemetry/api';
import { meter, tracingEnabled } from '@portcullis/platform';
import type { Logger } from '@portcullis/platform';
import type { Aggregates } from './aggregates';
import { RecentKeys } from './recent-keys';
import type { AuditSink } from './sink';

/** The audit line of an event: its identity (event, flowId) always leads the line. */
export function auditLine(e: FlowEvent): string {
  const { event, flowId, ...rest } = e;
  return JSON.stringify({ event, flowId, ...rest });
}

/** The unique prefix of an event's line, used to recognise it in the sink. */
function lineKey(line: string): string {
  return line.slice(0, line.indexOf(',"', line.indexOf('"flowId"')) + 1);
}

export interface ConsumerOptions {
  consumer: string;
  batchSize: number;
  blockMs: number;
  claimIdleMs: number;
  /** how many recent (event, flowId) keys are remembered to drop duplicates; 200,000 by default */
  dedupeKeys?: number;
}

/** The identity of an event in the audit log: one flow has one flow.start and one flow.end. */
function eventKey(e: FlowEvent): string {
  return (e.event === 'flow.start' ? 's ' : 'e ') + e.flowId;
}

const tracer = trace.getTracer('portcullis-audit');
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

/** Links from the batch's span to each sampled flow it records. */
function links(events: FlowEvent[]): Link[] {
  const out: Link[] = [];
  for (const e of events) {
    const m = e.traceparent ? TRACEPARENT.exec(e.traceparent) : null;
    if (m) out.push({ context: { traceId: m[1] as string, spanId: m[2] as string, traceFlags: 1, isRemote: true }, attributes: { flowId: e.flowId, event: e.event } });
  }
  return out;
}

export class AuditConsumer {
  private readonly written = meter().createCounter('portcullis_audit_written_total', { description: 'Flow events written to the audit sink' });
  private readonly duplicates = meter().createCounter('portcullis_audit_duplicates_total', { description: 'Flow events delivered again after they were written, dropped (and acknowledged) instead of written twice' });
  /**
   * Keys of events written by this process. 100k–200k keys cover half a minute to a minute at
   * 1,600 flows/s (two events each), far longer than a re-sent batch takes to follow the
   * original; 200k keys of UUID flowIds hold about 23 MB (measured).
   */
  private readonly recent: RecentKeys;
  /** last time a read of the stream succeeded (readiness) */
  lastOk = 0;
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private lastClaim = 0;
  readonly stats = { written: 0, invalid: 0, claimed: 0, errors: 0, duplicatesSkipped: 0 };

  constructor(
    private readonly transport: FlowTransport,
    private readonly sink: AuditSink,
    private readonly rejects: AuditSink,
    private readonly log: Logger,
    private readonly opts: ConsumerOptions,
    private readonly aggregates?: Aggregates,
  ) {
    this.recent = new RecentKeys(opts.dedupeKeys ?? 200_000);
  }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    let backoff = 100;
    let recovered = false;
    while (this.running) {
      try {
        if (!recovered) {
          await this.transport.ensureGroup();
          // Our own unacknowledged entries from before a restart come first.
          for (;;) {
            const own = await this.transport.readOwnPending(this.opts.consumer, this.opts.batchSize);
            if (own.length === 0) break;
            await this.handle(own, true);
          }
          recovered = true;
        }
        if (Date.now() - this.lastClaim > Math.min(this.opts.claimIdleMs, 5_000)) {
          this.lastClaim = Date.now();
          const claimed = await this.transport.claimIdle(this.opts.consumer, this.opts.claimIdleMs, this.opts.batchSize);
          if (claimed.length) {
            this.stats.claimed += claimed.length;
            this.log.info({ count: claimed.length }, 'audit.claimed entries of an idle consumer');
            await this.handle(claimed, true);
          }
        }
        const batch = await this.transport.read(this.opts.consumer, this.opts.batchSize, this.opts.blockMs);
        this.lastOk = Date.now();
        await this.handle(batch);
        backoff = 100;
      } catch (err) {
        if (!this.running) break;
        this.stats.errors++;
        this.log.warn({ err: (err as Error).message, retryMs: backoff }, 'audit.read failed; retrying');
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 2_000);
        recovered = false;
      }
    }
  }

  /**
   * Writes then acknowledges. An event this consumer wrote recently (the same entry added twice
   * by an edge's retry, or twice in one batch) is dropped. `redelivered` entries (our own pending
   * ones after a restart, or claimed from a dead consumer) may also be in the sink from before:
   * those found there are skipped too, so a redelivery never duplicates a line. Duplicates are
   * acknowledged like the rest.
   */
  private async handle(batch: StreamEntry[], redelivered = false): Promise<void> {
    if (batch.length === 0) return;
    let lines: string[] = [];
    let fresh: FlowEvent[] = [];
    const keys: string[] = [];
    const bad: string[] = [];
    // Keys join `recent` only once the write succeeded: a failed batch comes back and must be written.
    const inBatch = new Set<string>();
    let dropped = 0;
    for (const entry of batch) {
      const r = decodeFlowEvent(entry.data);
      if (!r.ok) {
        bad.push(JSON.stringify({ id: entry.id, error: r.error, raw: entry.data.slice(0, 4096) }));
        continue;
      }
      const key = eventKey(r.event);
      if (this.recent.has(key) || inBatch.has(key)) {
        dropped++;
        continue;
      }
      inBatch.add(key);
      keys.push(key);
      fresh.push(r.event);
      lines.push(auditLine(r.event));
    }
    const span = tracingEnabled() ? tracer.startSpan('audit.write', { links: links(fresh), attributes: { count: batch.length, redelivered } }) : undefined;
    if (redelivered && lines.length) {
      const needles = lines.map(lineKey);
      const present = await this.sink.has(needles);
      if (present.size) {
        dropped += present.size;
        lines = lines.filter((_, i) => !present.has(needles[i] as string));
        fresh = fresh.filter((_, i) => !present.has(needles[i] as string));
      }
    }
    await this.sink.write(lines);
    for (const k of keys) this.recent.add(k);
    if (bad.length) {
      this.stats.invalid += bad.length;
      this.log.warn({ count: bad.length }, 'audit.invalid events kept in the rejects file');
      await this.rejects.write(bad);
    }
    // Aggregates are for operators' eyes: a Redis hiccup there must not hold back the audit log.
    await this.aggregates?.record(fresh).catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'audit.aggregates not updated'));
    await this.transport.ack(batch.map((e) => e.id));
    this.stats.written += lines.length;
    this.written.add(lines.length);
    if (dropped) {
      this.stats.duplicatesSkipped += dropped;
      this.duplicates.add(dropped);
      this.log.info({ count: dropped, redelivered }, 'audit.duplicates dropped');
    }
    span?.end();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.transport.close();
    await this.loop;
  }
}
