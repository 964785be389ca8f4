// Idle timeouts for relayed flows without a timer per socket. A socket's own setTimeout costs a
// Timeout object per socket and a timer-list reinsertion on every read and write; here one
// interval per idle setting sweeps every open flow, and a chunk only stamps a small integer.

/** One relayed flow as the watch sees it. `seen` is stamped with the watch's tick on activity. */
export interface IdleEntry {
  seen: number;
  onIdle(): void;
}

export class IdleWatch {
  /** the coarse clock: sweeps since the watch started */
  tick = 0;
  private readonly entries = new Set<IdleEntry>();
  private timer: NodeJS.Timeout | undefined;
  private readonly stepMs: number;
  private readonly idleTicks: number;

  /** Flows are closed between idleMs and idleMs + one step (a tenth of idleMs, 25 ms to 1 s). */
  constructor(readonly idleMs: number) {
    this.stepMs = Math.max(25, Math.min(1_000, Math.floor(idleMs / 10)));
    this.idleTicks = Math.max(1, Math.ceil(idleMs / this.stepMs));
  }

  get size(): number {
    return this.entries.size;
  }

  add(e: IdleEntry): void {
    e.seen = this.tick;
    this.entries.add(e);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.stepMs);
      this.timer.unref();
    }
  }

  remove(e: IdleEntry): void {
    this.entries.delete(e);
    if (this.entries.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /**
   * A flow stamped at tick t was last active somewhere in (t-1, t] steps; it is idle once a full
   * idleMs has surely passed, i.e. at tick t + idleTicks + 1.
   */
  private sweep(): void {
    const now = ++this.tick;
    for (const e of this.entries) {
      if (now - e.seen > this.idleTicks) {
        this.remove(e);
        e.onIdle();
      }
    }
  }
}

const watches = new Map<number, IdleWatch>();

/** The process-wide watch for one idle setting. */
export function idleWatch(idleMs: number): IdleWatch {
  let w = watches.get(idleMs);
  if (!w) {
    w = new IdleWatch(idleMs);
    watches.set(idleMs, w);
  }
  return w;
}
