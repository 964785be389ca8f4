// DecideStream batches against a real policy service on a real Redis, over real gRPC: batched
// decisions towards a client that asked for them, one per message towards one that did not (an
// older edge), and hostile messages refused without harming other calls.
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DECIDE_BATCH_HEADER } from '@portcullis/contracts';
import type { DecideRequest, DecideStreamRequest, DecideStreamResponse__Output, PolicyDecisionClient } from '@portcullis/contracts';
import { DecisionClient } from '@portcullis/edge';
import { startPolicyService } from '@portcullis/policy';
import type { PolicyServiceHandle } from '@portcullis/policy';
import { startRedis } from '@portcullis/testing';
import type { TestRedis } from '@portcullis/testing';
import { decide, decisionClient } from '../support/grpc';
import { githubProfile, policyConfig } from '../support/policy';


const req = (sni: string): DecideRequest => ({ sni, port: 443, source_ip: '10.0.0.1', protocol: 'tls', node_id: 'it' });

interface Opened {
  call: grpc.ClientDuplexStream<DecideStreamRequest, DecideStreamResponse__Output>;
  headers: Promise<grpc.Metadata>;
  messages: DecideStreamResponse__Output[];
  /** resolves once answers for all `ids` arrived (flattening batches) */
  answers(ids: number[]): Promise<Map<number, DecideStreamResponse__Output>>;
  status: Promise<grpc.StatusObject>;
}

function open(client: PolicyDecisionClient, batched: boolean): Opened {
  const md = new grpc.Metadata();
  if (batched) md.set(DECIDE_BATCH_HEADER, '256');
  const call = client.DecideStream(md);
  const messages: DecideStreamResponse__Output[] = [];
  const seen = new Map<number, DecideStreamResponse__Output>();
  let waiting: (() => void) | undefined;
  call.on('data', (m: DecideStreamResponse__Output) => {
    messages.push(m);
    for (const e of [m, ...m.batch]) if (e.request_id) seen.set(e.request_id, e);
    waiting?.();
  });
  call.on('error', () => undefined);
  return {
    call,
    messages,
    headers: new Promise((r) => call.once('metadata', r)),
    status: new Promise((r) => call.once('status', r)),
    answers: (ids) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`answers missing for ${ids.filter((i) => !seen.has(i)).join(',')}`)), 5_000);
        waiting = () => {
          if (ids.every((i) => seen.has(i))) {
            clearTimeout(timer);
            resolve(seen);
          }
        };
        waiting();
      }),
  };
}

describe('DecideStream batches (real policy service, real Redis)', () => {
  let redis: TestRedis;
  let svc: PolicyServiceHandle;
  let client: PolicyDecisionClient;
  const log = pino({ level: 'silent' });

  beforeAll(async () => {
    redis = await startRedis();
    const config = policyConfig(redis.url, githubProfile(), 'integration-token');
    svc = await startPolicyService(config, { log });
    client = decisionClient(svc.address);
  });

  afterAll(async () => {
    client?.close();
    await svc?.stop();
    await redis?.stop();
  });

  it('announces batches in its response headers and answers a batch message, batched, every decision on its own id', async () => {
    const s = open(client, true);
    const ids = Array.from({ length: 50 }, (_, i) => i + 1);
    s.call.write({ batch: ids.map((id) => ({ request_id: id, request: req(id % 2 ? `b${id}.github.com` : `b${id}.example.org`) })) });
    expect((await s.headers).get(DECIDE_BATCH_HEADER)[0]).toBe('1024');
    const got = await s.answers(ids);
    for (const id of ids) expect(got.get(id)?.response?.verdict).toBe(id % 2 ? 'VERDICT_ALLOW' : 'VERDICT_DENY');
    // fewer messages than decisions: the answers came back together
    expect(s.messages.length).toBeLessThan(ids.length);
    // the same names again: answered from the Redis verdict cache, still batched
    const again = ids.map((id) => id + 100);
    s.call.write({ batch: again.map((id) => ({ request_id: id, request: req(id % 2 ? `b${id - 100}.github.com` : `b${id - 100}.example.org`) })) });
    const hits = await s.answers(again);
    expect(again.every((id) => hits.get(id)?.response?.cache_hit === true)).toBe(true);
    s.call.end();
    expect((await s.status).code).toBe(grpc.status.OK);
  });

  it('answers an older client (no batch header) one decision per message, as before', async () => {
    const s = open(client, false);
    const ids = Array.from({ length: 20 }, (_, i) => i + 1);
    for (const id of ids) s.call.write({ request_id: id, request: req(`o${id}.github.com`) });
    await s.answers(ids);
    expect(s.messages).toHaveLength(ids.length);
    expect(s.messages.every((m) => m.batch.length === 0 && m.response?.verdict === 'VERDICT_ALLOW')).toBe(true);
    s.call.end();
    expect((await s.status).code).toBe(grpc.status.OK);
  });

  it('refuses, decision by decision, a batch entry without a request and the entries past the batch limit', async () => {
    const s = open(client, true);
    const ids = Array.from({ length: 1_030 }, (_, i) => i + 1);
    s.call.write({ batch: ids.map((id) => ({ request_id: id, request: id === 7 ? null : req(`l${id}.github.com`) })) });
    const got = await s.answers(ids);
    expect(got.get(7)?.error).toBe('missing request');
    expect(got.get(1_024)?.response?.verdict).toBe('VERDICT_ALLOW');
    expect(got.get(1_025)?.error).toMatch(/batch longer than 1024/);
    expect(got.get(1_030)?.error).toMatch(/batch longer than 1024/);
    s.call.end();
  });

  it('ends a stream that sends malformed bytes with INTERNAL, and keeps serving the others', async () => {
    // a client that writes raw bytes: what a hostile or broken peer can send
    const Raw = grpc.makeGenericClientConstructor(
      { DecideStream: { path: '/portcullis.v1.PolicyDecision/DecideStream', requestStream: true, responseStream: true, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } },
      'PolicyDecision',
    );
    const raw = new Raw(svc.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & { DecideStream(): grpc.ClientDuplexStream<Buffer, Buffer> };
    try {
      for (const bad of [Buffer.from([0x12, 0x05, 0x0a]), Buffer.from([0x1a, 0x04, 0x1a, 0x02, 0x08, 0x01]), Buffer.from([0x7b, 0x7c])]) {
        const call = raw.DecideStream();
        const status = new Promise<grpc.StatusObject>((r) => call.once('status', r));
        call.on('error', () => undefined);
        call.on('data', () => undefined);
        call.write(bad);
        const st = await status;
        expect(st.code).toBe(grpc.status.INTERNAL);
        expect(st.details).toMatch(/deserializing request/);
      }
    } finally {
      raw.close();
    }
    expect((await decide(client, req('after.github.com'))).verdict).toBe('VERDICT_ALLOW');
  });

  it("the edge's DecisionClient batches its decisions on the stream and gets every answer", async () => {
    const dc = new DecisionClient({ address: svc.address, nodeId: 'it', decideTimeoutMs: 2_000, l1Size: 10_000, failMode: 'closed', serveStaleMs: 0, log });
    dc.start();
    try {
      const names = Array.from({ length: 500 }, (_, i) => (i % 3 ? `dc${i}.github.com` : `dc${i}.example.org`));
      const input = (sni: string) => ({ sni, connectHost: '', port: 443, sourceIp: '10.0.0.1', protocol: 'tls', ech: false, echGrease: false, noNameReason: '', listener: 'tls', flowId: 'f', traceparent: '' });
      // the first decision opens the stream and learns from its headers that the service reads batches
      expect((await dc.decide(input('first.github.com'))).verdict).toBe('allow');
      const verdicts = await Promise.all(names.map((n) => dc.decide(input(n))));
      expect(verdicts.map((v) => v.verdict)).toEqual(names.map((n) => (n.endsWith('github.com') ? 'allow' : 'deny')));
      expect(verdicts.every((v) => v.source === 'service')).toBe(true);
      expect(dc.stats).toMatchObject({ streamCalls: 501, unaryCalls: 0, failures: 0 });
      // L1 answers the same names now
      expect((await dc.decide(input(names[1] as string))).source).toBe('l1');
    } finally {
      dc.close();
    }
  });
});
