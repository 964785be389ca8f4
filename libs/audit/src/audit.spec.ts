import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFlowEvent, MemoryFlowTransport, RedisFlowTransport } from '@portcullis/flow-events';
import type { FlowEnd, FlowStart } from '@portcullis/flow-events';
import { startRedis, waitFor } from '@portcullis/testing';
import type { TestRedis } from '@portcullis/testing';
import { AuditConsumer, auditLine } from './consumer';
import { RecentKeys } from './recent-keys';
import { NdjsonFileSink } from './sink';
import type { AuditSink } from './sink';

const log = pino({ level: 'silent' });
const ev = (i: number): FlowStart => ({ v: 1, event: 'flow.start', flowId: `flow-${i}`, nodeId: 'n', listener: 'tls', mode: 'sni', src: '127.0.0.1:1', dst: '', sni: `n${i}.test`, connectHost: '', protocol: 'tls', verdict: 'deny', ruleId: '', reason: 'default', policyVersion: 1, startTime: new Date(0).toISOString() });

const end = (i: number): FlowEnd => ({ ...ev(i), event: 'flow.end', bytesUp: 1, bytesDown: 2, durationMs: 3, closeReason: 'client-closed', traceId: '' });

function lines(dir: string, prefix = 'audit.log'): string[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && !f.endsWith('.rejects'))
    .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean));
}

describe('audit consumer', () => {
  it('writes valid events, keeps invalid ones in the rejects file, and acknowledges only after the write', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const t = new MemoryFlowTransport();
    const sink = new NdjsonFileSink(join(dir, 'audit.log'));
    const rejects = new NdjsonFileSink(join(dir, 'audit.log.rejects'));
    await t.add([encodeFlowEvent(ev(1)), '{"broken":', encodeFlowEvent(ev(2))]);
    const c = new AuditConsumer(t, sink, rejects, log, { consumer: 'a', batchSize: 10, blockMs: 20, claimIdleMs: 60_000 });
    c.start();
    await waitFor(() => c.stats.written === 2);
    await c.stop();
    expect(lines(dir).map((l) => JSON.parse(l).flowId)).toEqual(['flow-1', 'flow-2']);
    expect(lines(dir)[0]?.startsWith('{"event":"flow.start","flowId":"flow-1",')).toBe(true);
    expect(readFileSync(join(dir, 'audit.log.rejects'), 'utf8')).toContain('"raw":"{\\"broken\\":"');
    expect(await t.readOwnPending('a', 10)).toEqual([]);
  });

  it('a consumer that died after writing but before acking: the survivor claims its entries without duplicating lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const t = new MemoryFlowTransport();
    const path = join(dir, 'audit.log');
    await t.add(Array.from({ length: 6 }, (_, i) => encodeFlowEvent(ev(i))));
    // "dead" consumer: took 4 entries, wrote the first 2, crashed before acking any
    const taken = await t.read('dead', 4, 0);
    const deadSink = new NdjsonFileSink(path);
    await deadSink.write(taken.slice(0, 2).map((e) => auditLine(JSON.parse(e.data))));
    await deadSink.close();
    const c = new AuditConsumer(t, new NdjsonFileSink(path), new NdjsonFileSink(`${path}.rejects`), log, { consumer: 'alive', batchSize: 10, blockMs: 20, claimIdleMs: 50 });
    c.start();
    await waitFor(() => lines(dir).length >= 6 && c.stats.claimed === 4, 10_000);
    await c.stop();
    const ids = lines(dir).map((l) => JSON.parse(l).flowId).sort();
    expect(ids).toEqual(['flow-0', 'flow-1', 'flow-2', 'flow-3', 'flow-4', 'flow-5']);
    expect(c.stats.duplicatesSkipped).toBe(2);
  });

  it('rotates by size without losing a line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const sink = new NdjsonFileSink(join(dir, 'audit.log'), { maxBytes: 2048 });
    for (let i = 0; i < 50; i++) await sink.write([auditLine(ev(i))]);
    await sink.close();
    expect(readdirSync(dir).length).toBeGreaterThan(3);
    expect(lines(dir).map((l) => JSON.parse(l).flowId).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `flow-${i}`).sort());
  });
});

describe('audit dedupe', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => redis?.stop());

  it('an entry added to the stream twice (a re-sent batch) is written once, counted, and both are acknowledged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const client = new Redis(redis.url);
    const stream = `test:dedupe:${Math.random()}`;
    const t = new RedisFlowTransport(client, { maxLen: 10_000, stream });
    await t.ensureGroup();
    const batch = [encodeFlowEvent(ev(1)), encodeFlowEvent(end(1)), encodeFlowEvent(ev(2))];
    await t.add(batch);
    await t.add(batch); // the edge's retry after a lost reply: the same three entries again
    await t.add([encodeFlowEvent(end(2)), encodeFlowEvent(end(2))]); // and twice within one read
    const c = new AuditConsumer(t, new NdjsonFileSink(join(dir, 'audit.log')), new NdjsonFileSink(join(dir, 'audit.log.rejects')), log, { consumer: 'a', batchSize: 3, blockMs: 20, claimIdleMs: 60_000 });
    c.start();
    await waitFor(async () => (await t.groupInfo()).lag === 0 && (await t.groupInfo()).pending === 0, 10_000);
    await c.stop();
    expect(lines(dir).map((l) => `${JSON.parse(l).event} ${JSON.parse(l).flowId}`)).toEqual(['flow.start flow-1', 'flow.end flow-1', 'flow.start flow-2', 'flow.end flow-2']);
    expect(c.stats.written).toBe(4);
    expect(c.stats.duplicatesSkipped).toBe(4);
    expect(await client.xlen(stream)).toBe(8);
    client.disconnect();
  });

  it('a batch whose write failed is not remembered as written: it is written when it comes back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const t = new MemoryFlowTransport();
    const file = new NdjsonFileSink(join(dir, 'audit.log'));
    let failures = 1;
    const flaky: AuditSink = {
      write: async (l) => {
        if (failures-- > 0) throw new Error('disk full');
        await file.write(l);
      },
      has: (n) => file.has(n),
      close: () => file.close(),
    };
    await t.add([encodeFlowEvent(ev(1)), encodeFlowEvent(ev(2))]);
    const c = new AuditConsumer(t, flaky, new NdjsonFileSink(join(dir, 'audit.log.rejects')), log, { consumer: 'a', batchSize: 10, blockMs: 20, claimIdleMs: 60_000 });
    c.start();
    await waitFor(() => c.stats.written === 2, 10_000);
    await c.stop();
    expect(c.stats.errors).toBe(1);
    expect(c.stats.duplicatesSkipped).toBe(0);
    expect(lines(dir).map((l) => JSON.parse(l).flowId)).toEqual(['flow-1', 'flow-2']);
  });

  it('remembers between half its capacity and its capacity of the latest keys', () => {
    const r = new RecentKeys(4);
    for (const k of ['a', 'b', 'c', 'd', 'e']) r.add(k);
    expect(['a', 'b', 'c', 'd', 'e'].map((k) => r.has(k))).toEqual([false, false, true, true, true]);
    expect(r.size).toBeLessThanOrEqual(4);
    expect(() => new RecentKeys(1)).toThrow();
  });
});
