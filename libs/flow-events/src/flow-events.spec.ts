import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, waitFor } from '@portcullis/testing';
import type { TestRedis } from '@portcullis/testing';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FLUSH_WINDOW_MS, FlowPublisher } from './publisher';
import { Spool } from './spool';
import { decodeFlowEvent, encodeFlowEnd, encodeFlowEvent, encodeFlowStart, flowEndSchema, flowStartSchema } from './schema';
import type { FlowEnd, FlowStart } from './schema';
import { MAX_APPEND_ENTRIES, MemoryFlowTransport, RedisFlowTransport } from './transport';
import type { FlowTransport } from './transport';

const start = (i: number): FlowStart => ({
  v: 1,
  event: 'flow.start',
  flowId: `f${i}`,
  nodeId: 'n',
  listener: 'tls',
  mode: 'sni',
  src: '127.0.0.1:1',
  dst: 'x:443',
  sni: 'x.test',
  connectHost: '',
  protocol: 'tls',
  verdict: 'allow',
  ruleId: 'r',
  reason: 'rule',
  policyVersion: 1,
  startTime: new Date(0).toISOString(),
});

describe('flow event schema', () => {
  it('round-trips and refuses events that break the schema', () => {
    expect(decodeFlowEvent(encodeFlowEvent(start(1)))).toEqual({ ok: true, event: start(1) });
    expect(decodeFlowEvent('{').ok).toBe(false);
    expect(decodeFlowEvent(JSON.stringify({ ...start(1), verdict: 'maybe' })).ok).toBe(false);
    expect(decodeFlowEvent(JSON.stringify({ ...start(1), v: 2 })).ok).toBe(false);
    expect(decodeFlowEvent(JSON.stringify({ ...start(1), extra: 1 })).ok).toBe(false);
    expect(decodeFlowEvent(JSON.stringify({ ...start(1), event: 'flow.end' })).ok).toBe(false); // end needs byte counts
  });
});

describe('the edge\'s flow-event encoders', () => {
  // strings as the network may hand them over: quotes, backslashes, control characters,
  // non-ASCII, emoji (surrogate pairs) and lone surrogates
  const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 }), fc.string({ unit: 'binary', maxLength: 20 }), fc.constantFrom('', 'github.com', 'a"b\\c', '\u0000\u001f\n', '\u2028', '\ud800x', 'x\udfff'));
  const number = fc.oneof(fc.nat(), fc.constant(2 ** 53 - 1), fc.double({ min: 0, max: 1e9, noNaN: true }));
  const startEvent = fc.record(
    { flowId: text, nodeId: text, listener: text, mode: text, src: text, dst: text, sni: text, connectHost: text, protocol: fc.constantFrom('tls', 'ssh', 'http', 'unknown'), verdict: fc.constantFrom('allow', 'deny'), ruleId: text, reason: text, detail: fc.option(text, { nil: undefined }), policyVersion: fc.nat(), startTime: text, wouldDeny: fc.option(fc.boolean(), { nil: undefined }), echGrease: fc.option(fc.boolean(), { nil: undefined }), traceparent: fc.option(text, { nil: undefined }) },
    { requiredKeys: [] },
  ).map((r): FlowStart => ({
    // schema order, as the edge builds them; absent optional keys present as undefined
    v: 1, event: 'flow.start', flowId: r.flowId ?? 'f', nodeId: r.nodeId ?? '', listener: r.listener ?? '', mode: r.mode ?? '', src: r.src ?? '', dst: r.dst ?? '', sni: r.sni ?? '', connectHost: r.connectHost ?? '', protocol: r.protocol ?? 'tls', verdict: r.verdict ?? 'allow', ruleId: r.ruleId ?? '', reason: r.reason ?? '', detail: r.detail, policyVersion: r.policyVersion ?? 0, startTime: r.startTime ?? '', wouldDeny: r.wouldDeny, echGrease: r.echGrease, traceparent: r.traceparent,
  }));
  const endFields = fc.record({ bytesUp: number, bytesDown: number, durationMs: number, closeReason: text, traceId: text });

  it('flow.start and flow.end come out as JSON.stringify writes them, whatever the strings hold', () => {
    fc.assert(
      fc.property(startEvent, endFields, (s, x) => {
        const start = encodeFlowStart(s);
        expect(start).toBe(JSON.stringify(s));
        const end: FlowEnd = { ...s, event: 'flow.end', ...x };
        expect(encodeFlowEnd(start, x)).toBe(JSON.stringify(end));
        expect(JSON.parse(encodeFlowEnd(start, x))).toEqual(JSON.parse(JSON.stringify(end)));
      }),
      { numRuns: 2_000 },
    );
  });

  it('every schema key is encoded, and a full pair decodes', () => {
    const s: FlowStart = { ...start(1), detail: 'matched rule r', wouldDeny: true, echGrease: false, traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' };
    const encoded = encodeFlowStart(s);
    expect(Object.keys(JSON.parse(encoded)).sort()).toEqual(Object.keys(flowStartSchema.shape).sort());
    const end = encodeFlowEnd(encoded, { bytesUp: 1, bytesDown: 2, durationMs: 3.5, closeReason: 'client-closed', traceId: '' });
    expect(Object.keys(JSON.parse(end)).sort()).toEqual(Object.keys(flowEndSchema.shape).sort());
    expect(decodeFlowEvent(encoded)).toEqual({ ok: true, event: s });
    expect(decodeFlowEvent(end)).toMatchObject({ ok: true, event: { ...s, event: 'flow.end', bytesUp: 1, durationMs: 3.5 } });
    expect(() => encodeFlowEnd(encodeFlowEvent({ ...s, event: 'flow.end', bytesUp: 0, bytesDown: 0, durationMs: 0, closeReason: '', traceId: '' }), { bytesUp: 0, bytesDown: 0, durationMs: 0, closeReason: '', traceId: '' })).toThrow();
  });
});

function transportContract(name: string, make: () => Promise<{ t: FlowTransport; done: () => Promise<void> }>): void {
  describe(`${name} transport`, () => {
    it('delivers each entry once to the group, keeps unacked ones pending, and lets an idle one be claimed', async () => {
      const { t, done } = await make();
      try {
        await t.ensureGroup();
        await t.ensureGroup(); // idempotent
        await t.add(['a', 'b', 'c']);
        const first = await t.read('c1', 2, 10);
        expect(first.map((e) => e.data)).toEqual(['a', 'b']);
        const second = await t.read('c2', 10, 10);
        expect(second.map((e) => e.data)).toEqual(['c']);
        await t.ack([second[0]?.id ?? '']);
        expect((await t.readOwnPending('c1', 10)).map((e) => e.data)).toEqual(['a', 'b']);
        expect(await t.claimIdle('c2', 60_000, 10)).toEqual([]);
        await new Promise((r) => setTimeout(r, 30));
        const claimed = await t.claimIdle('c2', 20, 10);
        expect(claimed.map((e) => e.data)).toEqual(['a', 'b']);
        await t.ack(claimed.map((e) => e.id));
        expect(await t.readOwnPending('c1', 10)).toEqual([]);
        expect(await t.read('c1', 10, 10)).toEqual([]);
      } finally {
        await done();
      }
    });
  });
}

transportContract('memory', async () => {
  const t = new MemoryFlowTransport();
  return { t, done: () => t.close() };
});

describe('with a real Redis', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => redis?.stop());

  transportContract('redis', async () => {
    const client = new Redis(redis.url);
    const stream = `test:flows:${Math.random()}`;
    const t = new RedisFlowTransport(client, { maxLen: 10_000, stream });
    return { t, done: async () => client.disconnect() };
  });

  it('the publisher keeps events queued while Redis is down and delivers all of them after', async () => {
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    client.on('error', () => undefined);
    const stream = `test:pub:${Math.random()}`;
    const t = new RedisFlowTransport(client, { maxLen: 100_000, stream });
    const pub = new FlowPublisher(t, { maxQueue: 10_000 });
    for (let i = 0; i < 100; i++) pub.publish(start(i));
    expect(await pub.drain(5_000)).toBe(0);
    await redis.kill();
    for (let i = 100; i < 300; i++) pub.publish(start(i));
    await new Promise((r) => setTimeout(r, 300));
    expect(pub.stats.failures).toBeGreaterThan(0);
    expect(pub.stats.queued).toBe(200);
    await redis.restart();
    expect(await pub.drain(10_000)).toBe(0);
    // the restarted Redis lost the first 100 (no persistence here); the 200 queued ones all arrived in order
    const entries = (await client.xrange(stream, '-', '+')).map(([, f]) => JSON.parse(f[1] ?? '{}').flowId as string);
    expect(entries).toEqual(Array.from({ length: 200 }, (_, i) => `f${i + 100}`));
    client.disconnect();
  });

  it('drops (and counts) only when its bounded queue is full', async () => {
    const t = new MemoryFlowTransport();
    t.add = () => Promise.reject(new Error('down'));
    const pub = new FlowPublisher(t, { maxQueue: 10 });
    for (let i = 0; i < 15; i++) pub.publish(start(i));
    expect(pub.stats.dropped).toBe(5);
    expect(pub.stats.queued).toBe(10);
  });
});

/** Calls per command since the last CONFIG RESETSTAT, from INFO commandstats. */
async function commandCalls(client: Redis): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of (await client.info('commandstats')).matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) out[m[1] as string] = Number(m[2]);
  return out;
}

describe('appending a batch', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    // small stream nodes, so MAXLEN ~ trims close to the bound
    redis = await startRedis({ args: ['--stream-node-max-entries', '10'] });
  });
  afterAll(async () => redis?.stop());

  it('one add() is one command however many events it carries; the entries land in order and MAXLEN ~ holds', async () => {
    const client = new Redis(redis.url);
    const stats = new Redis(redis.url);
    const stream = `test:append:${Math.random()}`;
    const t = new RedisFlowTransport(client, { maxLen: 40, stream });
    await t.add(['warm-up']); // the connection's first call sends the script itself (EVAL)
    const data = (round: number, n: number): string[] => Array.from({ length: n }, (_, i) => encodeFlowEvent(start(round * 1000 + i)));
    for (const n of [1, 16, 100]) {
      await stats.config('RESETSTAT');
      await t.add(data(n, n));
      const calls = await commandCalls(stats);
      expect({ n, scripts: (calls['evalsha'] ?? 0) + (calls['eval'] ?? 0), xadds: calls['xadd'] }).toEqual({ n, scripts: 1, xadds: n }); // the XADDs run inside the script
    }
    const ids = (await client.xrange(stream, '-', '+')).map(([, f]) => JSON.parse(f[1] ?? '{}').flowId as string);
    expect(ids.length).toBeGreaterThanOrEqual(40);
    expect(ids.length).toBeLessThanOrEqual(50); // trimmed by whole nodes of 10
    expect(ids).toEqual(data(100, 100).slice(-ids.length).map((d) => JSON.parse(d).flowId));
    client.disconnect();
    stats.disconnect();
  });

  it('a steady trickle of events shares calls (a window per call, not a call per event) and each lands within milliseconds, in order', async () => {
    const client = new Redis(redis.url);
    const stats = new Redis(redis.url);
    const stream = `test:append-trickle:${Math.random()}`;
    const t = new RedisFlowTransport(client, { maxLen: 100_000, stream });
    await t.add(['warm-up']);
    const pub = new FlowPublisher(t, { maxQueue: 10_000 });
    await stats.config('RESETSTAT');
    // ~2,000 events/s for 200 ms: an event every half millisecond, as an edge at 1,000 connections/s
    const n = 400;
    const landedLate: number[] = [];
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      pub.publish(start(i));
      if (i % 2 === 1) await new Promise((r) => setTimeout(r, 1));
      if (i === n / 2) {
        // an event published mid-stream is in Redis within a few windows, not at the end
        const mid = `f${i}`;
        const at = performance.now();
        void waitFor(async () => (await stats.xrevrange(stream, '+', '-', 'COUNT', 50)).some(([, f]) => (f[1] ?? '').includes(`"${mid}"`)), 2_000).then(() => landedLate.push(performance.now() - at));
      }
    }
    expect(await pub.drain(5_000)).toBe(0);
    const elapsed = performance.now() - started;
    const calls = await commandCalls(stats);
    const scripts = (calls['evalsha'] ?? 0) + (calls['eval'] ?? 0);
    // one call per window at most (plus the drain's), far fewer than one per event
    expect(scripts).toBeLessThanOrEqual(Math.ceil(elapsed / FLUSH_WINDOW_MS) + 2);
    expect(scripts).toBeLessThan(n / 4);
    await waitFor(() => landedLate.length === 1, 2_000);
    expect(landedLate[0]).toBeLessThan(100);
    expect((await client.xrange(stream, '-', '+')).map(([, f]) => f[1]).slice(1).map((d) => JSON.parse(d ?? '{}').flowId)).toEqual(Array.from({ length: n }, (_, i) => `f${i}`));
    client.disconnect();
    stats.disconnect();
  });

  it('a batch larger than one script may carry goes as several calls, still in order', async () => {
    const client = new Redis(redis.url);
    const stats = new Redis(redis.url);
    const stream = `test:append-big:${Math.random()}`;
    const t = new RedisFlowTransport(client, { maxLen: 100_000, stream });
    await t.add(['warm-up']);
    const n = 2 * MAX_APPEND_ENTRIES + 7;
    await stats.config('RESETSTAT');
    await t.add(Array.from({ length: n }, (_, i) => String(i)));
    const calls = await commandCalls(stats);
    expect((calls['evalsha'] ?? 0) + (calls['eval'] ?? 0)).toBe(3);
    expect((await client.xrange(stream, '-', '+')).map(([, f]) => f[1])).toEqual(['warm-up', ...Array.from({ length: n }, (_, i) => String(i))]);
    client.disconnect();
    stats.disconnect();
  });

  it('when Redis no longer has the script (flushed, or restarted) the next add() loads it again', async () => {
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    client.on('error', () => undefined);
    const stream = `test:append-noscript:${Math.random()}`;
    const t = new RedisFlowTransport(client, { maxLen: 100, stream });
    await t.add(['a']);
    await client.script('FLUSH'); // same connection: EVALSHA meets NOSCRIPT and ioredis falls back to EVAL
    await t.add(['b']);
    expect((await client.xrange(stream, '-', '+')).map(([, f]) => f[1])).toEqual(['a', 'b']);
    await redis.kill(); // no persistence here: the stream goes too
    await redis.restart();
    await waitFor(() => client.status === 'ready', 5_000);
    await t.add(['c', 'd']);
    expect((await client.xrange(stream, '-', '+')).map(([, f]) => f[1])).toEqual(['c', 'd']);
    client.disconnect();
  });
});

describe('spool', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => redis?.stop());

  it('spills to disk when the queue is full while Redis is down, then replays everything in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spool-'));
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    client.on('error', () => undefined);
    const stream = `test:spool:${Math.random()}`;
    const t = new RedisFlowTransport(client, { maxLen: 100_000, stream });
    const pub = new FlowPublisher(t, { maxQueue: 100, batchSize: 250, spool: new Spool(dir, 10 * 1024 * 1024) });
    await redis.kill();
    for (let i = 0; i < 3_000; i++) pub.publish(start(i));
    await new Promise((r) => setTimeout(r, 300));
    expect(pub.stats.dropped).toBe(0);
    expect(pub.stats.spooled).toBe(2_900);
    expect(pub.spoolBytes).toBeGreaterThan(0);
    await redis.restart();
    expect(await pub.drain(15_000)).toBe(0);
    const ids = (await client.xrange(stream, '-', '+')).map(([, f]) => JSON.parse(f[1] ?? '{}').flowId as string);
    expect(ids).toEqual(Array.from({ length: 3_000 }, (_, i) => `f${i}`));
    expect(pub.spoolBytes).toBe(0);
    client.disconnect();
  });

  it('a spool left by an earlier process is replayed first, from where it stopped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spool-'));
    const old = new Spool(dir, 1024 * 1024);
    for (let i = 0; i < 10; i++) old.append(encodeFlowEvent(start(i)));
    const first = await old.peek(4);
    old.commit(first.next); // 4 delivered before the "crash"
    const client = new Redis(redis.url);
    const stream = `test:spool2:${Math.random()}`;
    const pub = new FlowPublisher(new RedisFlowTransport(client, { maxLen: 100_000, stream }), { maxQueue: 100, spool: new Spool(dir, 1024 * 1024) });
    pub.publish(start(100));
    expect(await pub.drain(5_000)).toBe(0);
    const ids = (await client.xrange(stream, '-', '+')).map(([, f]) => JSON.parse(f[1] ?? '{}').flowId as string);
    expect(ids).toEqual(['f4', 'f5', 'f6', 'f7', 'f8', 'f9', 'f100']);
    client.disconnect();
  });

  it('drops (and counts) only when the spool is full too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spool-'));
    const t = new MemoryFlowTransport();
    t.add = () => Promise.reject(new Error('down'));
    const pub = new FlowPublisher(t, { maxQueue: 10, spool: new Spool(dir, 3 * (encodeFlowEvent(start(10)).length + 1)) }); // room for exactly three spilled events
    for (let i = 0; i < 20; i++) pub.publish(start(i));
    expect(pub.stats.spooled).toBe(3);
    expect(pub.stats.dropped).toBe(7);
  });
});
