import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IdleWatch } from './idle';
import type { IdleEntry } from './idle';

const entry = (): IdleEntry & { idledAt: number[] } => {
  const e = {
    seen: 0,
    idledAt: [] as number[],
    onIdle(): void {
      e.idledAt.push(Date.now());
    },
  };
  return e;
};

describe('IdleWatch: idle timeouts without a timer per flow', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('closes a silent flow between idleMs and idleMs plus one step, once', () => {
    const w = new IdleWatch(1_000); // step 100 ms
    const e = entry();
    w.add(e);
    vi.advanceTimersByTime(999);
    expect(e.idledAt).toEqual([]);
    vi.advanceTimersByTime(1_200);
    expect(e.idledAt).toHaveLength(1);
    expect(e.idledAt[0]).toBeGreaterThanOrEqual(1_000);
    expect(e.idledAt[0]).toBeLessThanOrEqual(1_100);
    expect(w.size).toBe(0);
  });

  it('a flow stamped with the current tick on every chunk is never idle, and idles a full idleMs after its last chunk', () => {
    const w = new IdleWatch(500); // step 50 ms
    const e = entry();
    w.add(e);
    for (let t = 0; t < 3_000; t += 100) {
      vi.advanceTimersByTime(100);
      e.seen = w.tick; // what a relayed chunk does
    }
    expect(e.idledAt).toEqual([]);
    vi.advanceTimersByTime(30); // a last chunk between two sweeps
    e.seen = w.tick;
    const last = Date.now();
    vi.advanceTimersByTime(1_000);
    expect(e.idledAt).toHaveLength(1);
    expect((e.idledAt[0] as number) - last).toBeGreaterThanOrEqual(500);
    expect((e.idledAt[0] as number) - last).toBeLessThanOrEqual(550);
  });

  it('a removed flow is never called, and the sweep stops when no flow is left', () => {
    const w = new IdleWatch(200);
    const a = entry();
    const b = entry();
    w.add(a);
    w.add(b);
    w.remove(a);
    vi.advanceTimersByTime(1_000);
    expect(a.idledAt).toEqual([]);
    expect(b.idledAt).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('bounds the sweep step: 25 ms for short timeouts, 1 s for long ones', () => {
    const short = new IdleWatch(50);
    const s = entry();
    short.add(s);
    vi.advanceTimersByTime(74);
    expect(s.idledAt).toEqual([]);
    vi.advanceTimersByTime(2);
    expect(s.idledAt).toHaveLength(1); // 50 ms silence needs 3 ticks of 25 ms
    const long = new IdleWatch(3_600_000);
    const l = entry();
    long.add(l);
    vi.advanceTimersByTime(3_599_000);
    expect(l.idledAt).toEqual([]);
    vi.advanceTimersByTime(2_000);
    expect(l.idledAt).toHaveLength(1);
  });
});
