// The DecisionClient against real gRPC servers speaking PolicyDecision: one that predates
// DecideStream batches (no header, one decision per message, batch fields unknown to it), one
// that never answers, and one whose stream breaks under pending decisions.
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DECIDE_BATCH_HEADER, loadContracts } from '@portcullis/contracts';
import type { DecideRequest__Output, DecideResponse, DecideStreamRequest__Output, DecideStreamResponse, PolicyDecisionHandlers } from '@portcullis/contracts';
import { DecisionClient } from './decide';
import type { DecideInput } from './decide';

const log = pino({ level: 'silent' });
const input = (sni: string): DecideInput => ({ sni, connectHost: '', port: 443, sourceIp: '10.0.0.1', protocol: 'tls', ech: false, echGrease: false, noNameReason: '', listener: 'tls', flowId: 'f', traceparent: '' });
const verdictFor = (r: DecideRequest__Output): DecideResponse => ({ verdict: r.sni.endsWith('.ok') ? 'VERDICT_ALLOW' : 'VERDICT_DENY', reason: 'rule', detail: 'test', policy_version: 1, cache_ttl_ms: 60_000 });

interface Seen {
  messages: DecideStreamRequest__Output[];
  headers: grpc.Metadata[];
  unary: number;
}

/** A PolicyDecision server; `stream` handles each DecideStream call (the default: an older service). */
async function server(stream?: (call: grpc.ServerDuplexStream<DecideStreamRequest__Output, DecideStreamResponse>, seen: Seen) => void): Promise<{ address: string; seen: Seen; stop(): Promise<void> }> {
  const seen: Seen = { messages: [], headers: [], unary: 0 };
  const s = new grpc.Server();
  const handlers: PolicyDecisionHandlers = {
    Decide(call, cb) {
      seen.unary++;
      cb(null, verdictFor(call.request));
    },
    DecideStream(call) {
      seen.headers.push(call.metadata);
      if (stream) return stream(call, seen);
      // as a service from before batches: no header, reads `request` only (batch is unknown to it)
      call.on('data', (m: DecideStreamRequest__Output) => {
        seen.messages.push(m);
        call.write(m.request ? { request_id: m.request_id, response: verdictFor(m.request) } : { request_id: m.request_id, error: 'missing request' });
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
    WatchPolicy(call) {
      call.write({ version: 1, profile_name: 't', applied_at: '' });
    },
  };
  s.addService(loadContracts().portcullis.v1.PolicyDecision.service, handlers);
  const port = await new Promise<number>((res, rej) => s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? rej(err) : res(p))));
  return { address: `127.0.0.1:${port}`, seen, stop: () => new Promise<void>((r) => s.tryShutdown(() => r())).then(() => s.forceShutdown()) };
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function client(address: string, decideTimeoutMs = 2_000): DecisionClient {
  const c = new DecisionClient({ address, nodeId: 'spec', decideTimeoutMs, l1Size: 1_000, failMode: 'closed', serveStaleMs: 0, log });
  c.start();
  cleanups.push(() => c.close());
  return c;
}

describe('DecisionClient', () => {
  it('asks a service that predates batches one decision per message, and gets every answer', async () => {
    const srv = await server();
    cleanups.push(srv.stop);
    const c = client(srv.address);
    const names = Array.from({ length: 100 }, (_, i) => (i % 2 ? `n${i}.ok` : `n${i}.no`));
    const verdicts = await Promise.all(names.map((n) => c.decide(input(n))));
    expect(verdicts.map((v) => v.verdict)).toEqual(names.map((n) => (n.endsWith('.ok') ? 'allow' : 'deny')));
    expect(srv.seen.messages).toHaveLength(100);
    expect(srv.seen.messages.every((m) => m.batch.length === 0 && m.request !== null)).toBe(true);
    // it told the service it reads batched answers
    expect(srv.seen.headers[0]?.get(DECIDE_BATCH_HEADER)).toEqual(['256']);
    expect(c.stats).toMatchObject({ streamCalls: 100, unaryCalls: 0, failures: 0 });
  });

  it('batches towards a service that announces batches, never more than the service reads', async () => {
    const srv = await server((call, seen) => {
      const md = new grpc.Metadata();
      md.set(DECIDE_BATCH_HEADER, '16');
      call.sendMetadata(md);
      call.on('data', (m: DecideStreamRequest__Output) => {
        seen.messages.push(m);
        const all = m.request ? [m, ...m.batch] : m.batch;
        call.write({ batch: all.map((e) => ({ request_id: e.request_id, response: verdictFor(e.request as DecideRequest__Output) })) });
      });
      call.on('error', () => undefined);
    });
    cleanups.push(srv.stop);
    const c = client(srv.address);
    expect((await c.decide(input('first.ok'))).verdict).toBe('allow'); // opens the stream, reads the headers
    const names = Array.from({ length: 100 }, (_, i) => `b${i}.ok`);
    const verdicts = await Promise.all(names.map((n) => c.decide(input(n))));
    expect(verdicts.every((v) => v.verdict === 'allow' && v.source === 'service')).toBe(true);
    // with nothing in flight the first goes at once; the 99 asked in the same turn follow batched
    const [single, ...batches] = srv.seen.messages.slice(1);
    expect(single?.request?.sni).toBe(names[0]);
    expect(batches.length).toBe(Math.ceil(99 / 16));
    expect(Math.max(...batches.map((m) => m.batch.length))).toBe(16);
    expect(batches.flatMap((m) => m.batch.map((e) => e.request?.sni))).toEqual(names.slice(1));
  });

  it('gives up on unanswered decisions at their deadline (fail closed), all of them, with one timer', async () => {
    const srv = await server((call) => {
      call.on('data', () => undefined); // never answers
      call.on('error', () => undefined);
    });
    cleanups.push(srv.stop);
    const c = client(srv.address, 300);
    const t0 = performance.now();
    const verdicts = await Promise.all(Array.from({ length: 50 }, (_, i) => c.decide(input(`t${i}.ok`))));
    const took = performance.now() - t0;
    expect(verdicts.every((v) => v.source === 'fail-closed' && v.verdict === 'deny')).toBe(true);
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(1_500);
    expect(c.stats.failures).toBe(50);
  });

  it('moves the decisions pending on a broken stream to unary calls within their deadline', async () => {
    let calls = 0;
    const srv = await server((call) => {
      calls++;
      // the first stream fails once it holds decisions; later ones would answer
      call.on('data', () => {
        if (calls === 1) setTimeout(() => call.emit('error', Object.assign(new Error('boom'), { code: grpc.status.UNAVAILABLE })), 20);
      });
      call.on('error', () => undefined);
    });
    cleanups.push(srv.stop);
    const c = client(srv.address, 2_000);
    const verdicts = await Promise.all(Array.from({ length: 20 }, (_, i) => c.decide(input(`u${i}.ok`))));
    expect(verdicts.every((v) => v.verdict === 'allow' && v.source === 'service')).toBe(true);
    expect(srv.seen.unary).toBe(20);
    expect(c.stats.failures).toBe(0);
  });
});
