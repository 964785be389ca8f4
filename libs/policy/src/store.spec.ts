import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, waitFor } from '@portcullis/testing';
import type { TestRedis } from '@portcullis/testing';
import { MemoryPolicyStore, RedisPolicyStore } from './store';
import type { NewPolicy, PolicyStore } from './store';

const doc = (comment: string): NewPolicy => ({ content: `# ${comment}`, profileName: 'p', appliedBy: 'test', appliedAt: new Date().toISOString(), comment, sha256: 'x', ruleCount: 1 });

function storeContract(name: string, make: () => Promise<{ a: PolicyStore; b: PolicyStore; done: () => Promise<void> }>): void {
  describe(`${name} policy store`, () => {
    it('seeds only when empty, versions monotonically, keeps bounded history, and notifies subscribers', async () => {
      const { a, b, done } = await make();
      try {
        const seen: number[] = [];
        const off = await b.subscribe((v) => seen.push(v));
        expect(await a.current()).toBeUndefined();
        expect((await a.apply(doc('seed'), { ifEmpty: true }))?.version).toBe(1);
        expect(await b.apply(doc('seed again'), { ifEmpty: true })).toBeUndefined();
        expect((await b.apply(doc('two')))?.version).toBe(2);
        expect((await a.current())?.comment).toBe('two');
        expect((await a.get(1))?.comment).toBe('seed');
        for (let i = 3; i <= 6; i++) await a.apply(doc(`v${i}`));
        const h = await b.history(10);
        expect(h.map((p) => p.version)).toEqual([6, 5, 4, 3, 2]); // limit 5
        expect(await a.get(1)).toBeUndefined(); // trimmed with its history entry
        await waitFor(() => seen.includes(6), 2_000);
        off();
      } finally {
        await done();
      }
    });
  });
}

storeContract('memory', async () => {
  const s = new MemoryPolicyStore(5);
  return { a: s, b: s, done: async () => undefined };
});

describe('with a real Redis', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => redis?.stop());

  storeContract('redis', async () => {
    const ca = new Redis(redis.url);
    const cb = new Redis(redis.url);
    const prefix = `t${Math.random().toString(36).slice(2)}`;
    const a = new RedisPolicyStore(ca, { prefix, historyLimit: 5 });
    const b = new RedisPolicyStore(cb, { prefix, historyLimit: 5 });
    return {
      a,
      b,
      done: async () => {
        await a.close();
        await b.close();
        ca.disconnect();
        cb.disconnect();
      },
    };
  });

  it('concurrent applies from several replicas get distinct versions', async () => {
    const clients = Array.from({ length: 4 }, () => new Redis(redis.url));
    const prefix = `c${Math.random().toString(36).slice(2)}`;
    const stores = clients.map((c) => new RedisPolicyStore(c, { prefix, historyLimit: 100 }));
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (stores[i % 4] as RedisPolicyStore).apply(doc(`c${i}`))));
    const versions = results.map((r) => r?.version).sort((x, y) => (x ?? 0) - (y ?? 0));
    expect(versions).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    for (const c of clients) c.disconnect();
  });
});
