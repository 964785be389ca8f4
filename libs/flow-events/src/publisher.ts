// The edge's side of the stream: never blocks a flow. Events wait in a bounded queue and are
// written in pipelined batches; while the transport is down they stay queued and are retried.
import type { FlowTransport } from './transport';
import { encodeFlowEvent } from './schema';
import type { FlowEvent } from './schema';
export interface PublisherStats {
  queued: number;
  published: number;
  dropped: number;
  failures: number;
}

export interface PublisherOptions {
  maxQueue: number;
  batchSize?: number;
  onError?: (err: unknown, queued: number) => void;
  onDrop?: (count: number) => void;
}

export class FlowPublisher {
  private queue: string[] = [];
  private flushing = false;
  private scheduled = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = 50;
  private idleWaiters: (() => void)[] = [];
  readonly stats: PublisherStats = { queued: 0, published: 0, dropped: 0, failures: 0 };

  constructor(
    private readonly transport: FlowTransport,
    private readonly opts: PublisherOptions,
  ) {}

  publish(event: FlowEvent): void {
    if (this.queue.length >= this.opts.maxQueue) {
      this.stats.dropped++;
      this.opts.onDrop?.(1);
      return;
    }
    this.queue.push(encodeFlowEvent(event));
    this.stats.queued = this.queue.length;
    if (!this.scheduled && !this.flushing && !this.retryTimer) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        void this.flush();
      });
    }
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.slice(0, this.opts.batchSize ?? 500);
        try {
          await this.transport.add(batch);
        } catch (err) {
          this.stats.failures++;
          this.opts.onError?.(err, this.queue.length);
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            void this.flush();
          }, this.backoffMs);
          this.backoffMs = Math.min(this.backoffMs * 2, 2_000);
          return;
        }
        this.backoffMs = 50;
        this.queue.splice(0, batch.length);
        this.stats.published += batch.length;
        this.stats.queued = this.queue.length;
      }
      for (const w of this.idleWaiters.splice(0)) w();
    } finally {
      this.flushing = false;
    }
  }

  /** Resolves when the queue is empty or after timeoutMs (returns how many are still queued). */
  async drain(timeoutMs: number): Promise<number> {
    if (this.queue.length === 0) return 0;
    void this.flush();
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
    if (this.retryTimer) clearTimeout(this.retryTimer);
    return this.queue.length;
  }
}
