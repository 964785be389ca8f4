// The edge's sniff stage against hostile and awkward clients, through real sockets and a real
// policy service: split hellos, silent clients, non-TLS bytes, oversized hellos.
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCESS_DENIED_ALERT } from '@portcullis/edge';
import { buildClientHello, defaultExtensions, helloExtensions } from '@portcullis/sniff';
import { makeCerts, startTlsUpstream, waitFor } from '@portcullis/testing';
import type { TestCerts, TlsUpstream } from '@portcullis/testing';
import { oversizedHello } from '../soak/support/hostile';
import { captureHello } from '../support/hello';
import { startStack } from '../support/stack';
import type { Stack } from '../support/stack';
import { nodeTls } from '../support/tls-client';

const PROFILE = `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: sniff
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: ok
    action: allow
    fqdns: ["ok.test"]
    allowPrivate: ["127.0.0.0/8"] # the test upstreams live on loopback
`;

/** Raw client: writes the given chunks with a delay between them, returns what came back and when it closed. */
function rawClient(port: number, chunks: Buffer[], delayMs: number): Promise<{ received: Buffer; closedAfterMs: number; socket: Socket }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const received: Buffer[] = [];
    const s = connect({ port, host: '127.0.0.1', noDelay: true });
    s.on('data', (d: Buffer) => received.push(d));
    s.on('error', () => undefined);
    s.on('close', () => resolve({ received: Buffer.concat(received), closedAfterMs: Date.now() - t0, socket: s }));
    s.on('connect', async () => {
      for (const c of chunks) {
        if (s.destroyed) return;
        s.write(c);
        if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      }
    });
  });
}

describe('edge sniff stage', () => {
  let certs: TestCerts;
  let upstream: TlsUpstream;
  let stack: Stack;
  const SNIFF_MS = 600;

  beforeAll(async () => {
    certs = makeCerts(['ok.test']);
    upstream = await startTlsUpstream(certs);
    stack = await startStack(PROFILE, {
      listeners: [
        { name: 'tls', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: upstream.port },
        // a per-listener override: patient enough for a hello dripped one byte at a time
        { name: 'patient', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: upstream.port, sniffTimeoutMs: 10_000 },
      ],
      resolve: { 'ok.test': ['127.0.0.1'] },
      sniffTimeoutMs: SNIFF_MS,
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.close();
  });

  it('a hello delivered one byte per write, with delays, is allowed and reaches the upstream byte for byte', async () => {
    const hello = await captureHello('ok.test');
    const before = upstream.connections.length;
    const bytes = [...hello].map((b) => Buffer.from([b]));
    // one byte per write with a delay: Nagle is off on Node sockets, so these are separate segments
    const s = connect({ port: stack.port('patient'), host: '127.0.0.1', noDelay: true });
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    for (const b of bytes) {
      s.write(b);
      await new Promise((r) => setTimeout(r, 1));
    }
    await waitFor(() => upstream.connections.length > before && Buffer.concat(upstream.connections[before]?.raw ?? []).length >= hello.length, 10_000);
    expect(Buffer.concat(upstream.connections[before]?.raw ?? []).equals(hello)).toBe(true);
    s.destroy();
  });

  it('a silent client (server-speaks-first protocol) is decided by noSni within sniffTimeoutMs + 200 ms', async () => {
    const r = await rawClient(stack.port(), [], 0);
    expect(r.closedAfterMs).toBeGreaterThanOrEqual(SNIFF_MS - 20);
    expect(r.closedAfterMs).toBeLessThanOrEqual(SNIFF_MS + 200);
    await waitFor(async () => (await stack.events()).some((e) => e.event === 'flow.start' && e.reason === 'client-silent'));
    const start = (await stack.events()).find((e) => e.event === 'flow.start' && e.reason === 'client-silent');
    expect(start).toMatchObject({ verdict: 'deny', protocol: 'unknown', sni: '' });
  });

  it('non-TLS bytes (an SSH banner) are decided by noSni with reason not-tls and protocol ssh', async () => {
    const r = await rawClient(stack.port(), [Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')], 0);
    expect(r.closedAfterMs).toBeLessThan(SNIFF_MS);
    await waitFor(async () => (await stack.events()).some((e) => e.reason === 'not-tls'));
    expect((await stack.events()).find((e) => e.reason === 'not-tls')).toMatchObject({ verdict: 'deny', protocol: 'ssh' });
  });

  it('a 70 KiB hello is refused cleanly at the 64 KiB cap, and the proxy keeps serving', async () => {
    // one ClientHello whose handshake header declares 70 KiB, spread over 16 KiB records
    const records = oversizedHello(70 * 1024);
    const r = await rawClient(stack.port(), records, 2);
    expect(r.closedAfterMs).toBeLessThan(SNIFF_MS + 200);
    // a fatal TLS alert, not a hang or a reset
    expect(r.received.subarray(0, 1)[0]).toBe(0x15);
    await waitFor(async () => (await stack.events()).some((e) => e.reason === 'hello-too-large'));
    const ok = await nodeTls(stack.port(), 'ok.test', certs.ca);
    expect(ok.body).toBe('hello from upstream ok.test\n');
  });

  it('every outcome above produced exactly one flow.start and one flow.end', async () => {
    await new Promise((r) => setTimeout(r, 200));
    const events = await stack.events();
    const byFlow = new Map<string, string[]>();
    for (const e of events) byFlow.set(e.flowId, [...(byFlow.get(e.flowId) ?? []), e.event]);
    expect(byFlow.size).toBe(5);
    for (const v of byFlow.values()) expect(v.sort()).toEqual(['flow.end', 'flow.start']);
  });
});

describe('edge sniff stage: Encrypted Client Hello', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack(PROFILE, { resolve: { 'ok.test': ['127.0.0.1'] }, sniffTimeoutMs: 1_000 });
  });
  afterAll(async () => stack?.stop());

  const send = (hello: Buffer): Promise<Buffer> =>
    new Promise((resolve) => {
      const got: Buffer[] = [];
      const s = connect({ port: stack.port(), host: '127.0.0.1' }, () => s.write(hello));
      s.on('data', (d: Buffer) => got.push(d));
      s.on('error', () => undefined);
      s.on('close', () => resolve(Buffer.concat(got)));
      setTimeout(() => s.destroy(), 1_500);
    });
  const ech = helloExtensions.echOuter({ configId: 7, payloadLength: 208 });

  it('ECH with a readable SNI (GREASE-shaped or real): the name decides, the record says echGrease', async () => {
    await send(buildClientHello({ extensions: [...defaultExtensions('denied-by-default.test'), ech] }));
    await waitFor(async () => (await stack.events()).some((e) => e.sni === 'denied-by-default.test'));
    expect((await stack.events()).find((e) => e.event === 'flow.start' && e.sni === 'denied-by-default.test')).toMatchObject({ verdict: 'deny', reason: 'default', echGrease: true });
  });

  it('ECH and no SNI: the profile ech action decides, reason ech', async () => {
    const reply = await send(buildClientHello({ extensions: [...defaultExtensions('x').slice(1), ech] }));
    expect(reply.equals(ACCESS_DENIED_ALERT)).toBe(true);
    await waitFor(async () => (await stack.events()).some((e) => e.reason === 'ech'));
    expect((await stack.events()).find((e) => e.event === 'flow.start' && e.reason === 'ech')).toMatchObject({ verdict: 'deny', sni: '', protocol: 'tls' });
  });
});
