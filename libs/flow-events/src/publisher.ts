// The edge's side of the stream: never blocks a flow. Events wait in a bounded queue and are
// written in batches (one Redis command each); while the transport is down they stay queued and are retried.
// When the queue is full they go to the spool file (in order), and only when that is full too
// are they dropped (counted).
import { encodeFlowEvent } from './schema';
import type { FlowEvent } from './schema';
import type { Spool } from './spool';
import type { FlowTransport } from './transport';

export interface PublisherStats {
  queued: number;
  published: number;
  dropped: number;
  failures: number;
  spooled: number;
}

export interface PublisherOptions {
  maxQueue: number;
  batchSize?: number;
  onError?: (err: unknown, queued: number) => void;
  onDrop?: (count: number) => void;
  spool?: Spool;
}

/**
 * How long the first queued event waits for others to share its Redis call. Also the gap after a
 * call returns with fewer than a batch queued: sending those at once let a second, small call
 * follow every windowed one (at ~2,000 events/s: 74 calls for 400 events, 50 or fewer now).
 * Each call costs the edge ~50 µs of CPU whatever it carries (client CPU per event: 7.6-9.3 µs in
 * batches of 13, 3.6-5.2 in batches of 26, a micro-benchmark). Once the express lane had taken
 * most of the per-flow work out of JavaScript, the calls showed: a 20 ms window took 0.94x the
 * edge's CPU per new connection of the 5 ms one in the same rounds (user time 146 -> 114 ms per
 * 1,000). 10 ms halves the calls at full load while a SIGKILLed edge loses at most 10 ms of events.
 */
export const FLUSH_WINDOW_MS = 10;

export class FlowPublisher {
  private queue: string[] = [];
  private flushing = false;
  private scheduled = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = 50;
  private idleWaiters: (() => void)[] = [];
  /** drain(): no waiting for a batch to fill */
  private draining = false;
  /** once events go to the spool, every later one does too until it is replayed: order is kept */
  private spilling: boolean;
  readonly stats: PublisherStats = { queued: 0, published: 0, dropped: 0, failures: 0, spooled: 0 };

  constructor(
    private readonly transport: FlowTransport,
    private readonly opts: PublisherOptions,
  ) {
    // A spool left by an earlier run is replayed before anything new.
    this.spilling = opts.spool !== undefined && !opts.spool.empty;
    if (opts.spool) {
      opts.spool.onLost = (count) => {
        this.stats.dropped += count;
        this.stats.spooled -= count;
        this.opts.onDrop?.(count);
      };
    }
    if (this.spilling) this.schedule();
  }

  get spoolBytes(): number {
    return this.opts.spool?.size ?? 0;
  }

  publish(event: FlowEvent): void {
    this.publishEncoded(encodeFlowEvent(event));
  }

  /** An event the caller encoded (encodeFlowEvent, or the edge's encodeFlowStart / encodeFlowEnd). */
  publishEncoded(data: string): void {
    const spool = this.opts.spool;
    if (spool && (this.spilling || this.queue.length >= this.opts.maxQueue)) {
      this.spilling = true;
      if (spool.append(data)) this.stats.spooled++;
      else this.drop();
      this.schedule();
      return;
    }
    if (this.queue.length >= this.opts.maxQueue) return this.drop();
    this.queue.push(data);
    this.stats.queued = this.queue.length;
    this.schedule();
  }

  private drop(): void {
    this.stats.dropped++;
    this.opts.onDrop?.(1);
  }

  /**
   * Flushes FLUSH_WINDOW_MS after the first queued event rather than at once: one script call then
   * carries many flows' events (fewer syscalls and Redis wake-ups per connection). A full batch
   * does not wait.
   */
  private schedule(): void {
    if (!this.scheduled && !this.flushing && !this.retryTimer) {
      this.scheduled = true;
      setTimeout(this.onWindow, FLUSH_WINDOW_MS);
    }
  }

  private readonly onWindow = (): void => {
    this.scheduled = false;
    void this.flush();
  };

  /** Writes a batch; on failure counts it, schedules a retry with backoff and answers false. */
  private async send(batch: string[]): Promise<boolean> {
    try {
      await this.transport.add(batch);
      return true;
    } catch (err) {
      this.stats.failures++;
      this.opts.onError?.(err, this.queue.length);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        void this.flush();
      }, this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 2_000);
      return false;
    }
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    let again = false;
    try {
      const batchSize = this.opts.batchSize ?? 500;
      while (this.queue.length > 0) {
        const batch = this.queue.slice(0, batchSize);
        if (!(await this.send(batch))) return;
        this.backoffMs = 50;
        this.queue.splice(0, batch.length);
        this.stats.published += batch.length;
        this.stats.queued = this.queue.length;
        // What queued during the call waits out a window of its own unless it already fills a
        // batch (or a drain is waiting). Order holds: the spool is replayed only after the queue.
        if (this.queue.length > 0 && this.queue.length < batchSize && !this.draining) {
          again = true;
          return;
        }
      }
      // Then the spool, oldest first; new events keep going to it until it is empty.
      const spool = this.opts.spool;
      while (spool && this.spilling) {
        const { lines, next } = await spool.peek(this.opts.batchSize ?? 500);
        if (lines.length === 0) {
          this.spilling = false;
          break;
        }
        if (!(await this.send(lines))) return;
        spool.commit(next);
        this.stats.published += lines.length;
      }
      if (this.queue.length > 0) {
        again = true;
        return;
      }
      this.draining = false;
      for (const w of this.idleWaiters.splice(0)) w();
    } finally {
      this.flushing = false;
      if (again) this.schedule();
    }
  }

  /**
   * Resolves when everything was delivered or after timeoutMs. Returns how many events are still
   * held in memory, plus one while the spool still has undelivered events (they stay on disk and a
   * restart replays them).
   */
  async drain(timeoutMs: number): Promise<number> {
    if (this.queue.length === 0 && !this.spilling) return 0;
    this.draining = true;
    void this.flush();
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.draining = false;
    return this.queue.length + (this.spilling ? 1 : 0);
  }
}
