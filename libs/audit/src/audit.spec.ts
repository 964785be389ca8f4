import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { encodeFlowEvent, MemoryFlowTransport } from '@portcullis/flow-events';
import type { FlowStart } from '@portcullis/flow-events';
import { waitFor } from '@portcullis/testing';
import { AuditConsumer, auditLine } from './consumer';
import { NdjsonFileSink } from './sink';

const log = pino({ level: 'silent' });
const ev = (i: number): FlowStart => ({ v: 1, event: 'flow.start', flowId: `flow-${i}`, nodeId: 'n', listener: 'tls', mode: 'sni', src: '127.0.0.1:1', dst: '', sni: `n${i}.test`, connectHost: '', protocol: 'tls', verdict: 'deny', ruleId: '', reason: 'default', policyVersion: 1, startTime: new Date(0).toISOString() });

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
