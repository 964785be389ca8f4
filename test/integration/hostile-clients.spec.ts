// Hostile clients against an in-process stack (real sockets, real policy service), the short CI run
// of the reliability suite (the long one is `npm run soak`): a flood of silent and slow-drip
// connections while legitimate clients are served; garbage, truncated, lying and oversized hellos;
// thousands of short flows with every close order, then no half-closed socket and no fd left.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, startTlsUpstream, waitFor } from '@portcullis/testing';
import type { TestCerts, TlsUpstream } from '@portcullis/testing';
import type { FlowEvent } from '@portcullis/flow-events';
import { captureHello } from '../support/hello';
import { startStack } from '../support/stack';
import type { Stack } from '../support/stack';
import {
  dripConn,
  fdCount,
  helloClaimingLess,
  helloClaimingMore,
  helloWithLyingSniLength,
  HUGE_HANDSHAKE,
  legitHandshake,
  OVERLONG_RECORD,
  oversizedHello,
  percentile,
  prng,
  randomBytes,
  scriptedUpstream,
  shortFlowHellos,
  shortFlows,
  sendConn,
  silentConn,
  sleep,
  socketStates,
  stuck,
} from '../soak/support/hostile';
import type { HostileConn } from '../soak/support/hostile';

const PROFILE = `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: hostile
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: ok
    action: allow
    fqdns: ["ok.test", ".short.test"]
    allowPrivate: ["127.0.0.0/8"] # the test upstreams live on loopback
`;

const SNIFF_MS = 1_500;
/** the listeners of the malformed-input cases wait longer, so "refused at once" and "released at the timeout" stay apart on a busy box */
const CASES_SNIFF_MS = 3_000;
/** how late after its sniff timeout a flooded edge may release a connection (a shared 2-CPU CI box under load) */
const RELEASE_SLACK_MS = 2_000;
const DECODE_ERROR = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);

/** Each flow has exactly one flow.start and one flow.end. */
/**
 * Events of the flows that started after the first `before` events: a flow of an earlier test
 * may still end inside the window, and its flow.end is not this test's.
 */
/**
 * How many events the stream holds once the earlier tests' flows are all audited: an edge writes
 * events in batches (a 5 ms window) and reports ends up to 20 ms late, so a count taken right
 * after a test can miss its last flow's events, which would then look like this test's.
 */
async function settledCount(stack: Stack): Promise<number> {
  let last = -1;
  for (;;) {
    const n = (await stack.events()).length;
    if (n === last) return n;
    last = n;
    await new Promise((r) => setTimeout(r, 200));
  }
}

function flowsSince(all: FlowEvent[], before: number): FlowEvent[] {
  const earlier = new Set(all.slice(0, before).map((e) => e.flowId));
  return all.slice(before).filter((e) => !earlier.has(e.flowId));
}

function pairs(events: FlowEvent[]): { flows: number; bad: [string, string[]][] } {
  const byFlow = new Map<string, string[]>();
  for (const e of events) byFlow.set(e.flowId, [...(byFlow.get(e.flowId) ?? []), e.event]);
  const bad = [...byFlow.entries()].filter(([, v]) => v.sort().join() !== 'flow.end,flow.start');
  return { flows: byFlow.size, bad };
}

describe('hostile clients', () => {
  let certs: TestCerts;
  let tlsUpstream: TlsUpstream;
  let raw: Awaited<ReturnType<typeof scriptedUpstream>>;
  let stack: Stack;
  let hello: Buffer;
  const hellos: Record<string, Buffer> = {};
  const names = ['srv-end', 'cli-end', 'srv-reset', 'mute'];

  beforeAll(async () => {
    certs = makeCerts(['ok.test']);
    tlsUpstream = await startTlsUpstream(certs);
    raw = await scriptedUpstream();
    hello = await captureHello('ok.test');
    Object.assign(hellos, await shortFlowHellos(captureHello));
    stack = await startStack(PROFILE, {
      listeners: [
        { name: 'tls', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: tlsUpstream.port },
        { name: 'raw', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: raw.port },
        { name: 'hostile', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: tlsUpstream.port, sniffTimeoutMs: CASES_SNIFF_MS },
        { name: 'connect', mode: 'http-connect', listen: '127.0.0.1:0', sniffTimeoutMs: CASES_SNIFF_MS },
        { name: 'socks', mode: 'socks5', listen: '127.0.0.1:0', sniffTimeoutMs: CASES_SNIFF_MS },
        { name: 'pp-untrusted', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: tlsUpstream.port, proxyProtocol: 'any', trustedProxies: ['10.9.9.9/32'], sniffTimeoutMs: CASES_SNIFF_MS },
        { name: 'pp-trusted', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: tlsUpstream.port, proxyProtocol: 'any', trustedProxies: ['127.0.0.1/32'], sniffTimeoutMs: CASES_SNIFF_MS },
      ],
      resolve: { 'ok.test': ['127.0.0.1'], ...Object.fromEntries(names.map((n) => [`${n}.short.test`, ['127.0.0.1']])) },
      sniffTimeoutMs: SNIFF_MS,
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await tlsUpstream?.close();
    for (const s of raw?.sockets ?? []) s.destroy();
    raw?.server.close();
  });

  it('200 silent and 200 slow-drip connections at once: each released at sniffTimeoutMs, legitimate handshakes served meanwhile', async () => {
    // the baseline: legitimate handshakes on a quiet edge
    for (let i = 0; i < 5; i++) await legitHandshake(stack.port(), 'ok.test', certs.ca); // warm-up
    const before: number[] = [];
    for (let i = 0; i < 30; i++) {
      const r = await legitHandshake(stack.port(), 'ok.test', certs.ca);
      expect(r.ok, r.error).toBe(true);
      before.push(r.ms);
    }
    const eventsBefore = await settledCount(stack);

    // the flood: a real hello dripped one byte per 50 ms would need ~15 s, far beyond the sniff timeout
    const attack: { kind: 'silent' | 'drip'; c: HostileConn }[] = [];
    for (let i = 0; i < 200; i++) attack.push({ kind: 'silent', c: silentConn(stack.port()) });
    for (let i = 0; i < 200; i++) attack.push({ kind: 'drip', c: dripConn(stack.port(), hello, 50) });
    await Promise.all(attack.map((a) => a.c.connected));
    let attacking = true;
    const closed = Promise.all(attack.map((a) => a.c.closed)).then((r) => {
      attacking = false;
      return r;
    });
    await waitFor(() => stack.edge.activeFlows() >= 400, 5_000);
    const during: number[] = [];
    const failures: string[] = [];
    while (attacking) {
      const r = await legitHandshake(stack.port(), 'ok.test', certs.ca);
      if (!r.ok) failures.push(r.error ?? 'no body');
      if (attacking) during.push(r.ms);
    }
    const results = await closed;

    const p50Before = percentile(before, 50);
    const p50During = percentile(during, 50);
    const release = results.map((r) => r.afterMs);
    console.log(`[hostile] legit handshake p50 before ${p50Before.toFixed(1)} ms, during the flood ${p50During.toFixed(1)} ms (n=${during.length}, p90 ${percentile(during, 90).toFixed(1)} ms); attack released after ${Math.min(...release)}..${Math.max(...release)} ms (sniffTimeoutMs ${SNIFF_MS})`);

    expect(failures).toEqual([]);
    expect(during.length).toBeGreaterThanOrEqual(5);
    expect(p50During).toBeLessThanOrEqual(Math.max(5 * p50Before, 200));
    for (const r of results) {
      expect(r.afterMs).toBeGreaterThanOrEqual(SNIFF_MS - 50);
      expect(r.afterMs).toBeLessThanOrEqual(SNIFF_MS + RELEASE_SLACK_MS);
    }
    // released as refused flows with the reason that says why, not dropped on the floor
    const attackEvents = async (): Promise<FlowEvent[]> => flowsSince(await stack.events(), eventsBefore).filter((e) => e.reason === 'client-silent' || e.reason === 'sniff-timeout');
    await waitFor(async () => (await attackEvents()).length >= 800, 10_000);
    const events = await attackEvents();
    const starts = events.filter((e) => e.event === 'flow.start');
    expect(starts.filter((e) => e.reason === 'client-silent')).toHaveLength(200);
    expect(starts.filter((e) => e.reason === 'sniff-timeout')).toHaveLength(200);
    for (const e of starts) expect(e).toMatchObject({ verdict: 'deny', sni: '' });
    expect(pairs(events)).toEqual({ flows: 400, bad: [] });
    await waitFor(() => stack.edge.activeFlows() === 0, 5_000);
  });

  // Each hostile input: the listener, what to send, how the client leaves, and the reason the
  // audit record must carry (and the reply, where the protocol has one).
  const http = (status: number) => Buffer.from(`HTTP/1.1 ${status} `);
  const socks = (rep: number) => Buffer.from([0x05, rep, 0x00, 0x01]);
  const SOCKS_HI = Buffer.from([0x05, 0x01, 0x00]);
  const v2 = (famProto: number, declared: number, body: Buffer) => Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, famProto, declared >> 8, declared & 0xff]), body]);
  type Case = { listener: string; name: string; send: () => Buffer[]; after: 'end' | 'reset' | 'hold'; reason: string; reply?: Buffer; late?: boolean };
  const cases: Case[] = [
    // sni
    { listener: 'hostile', name: 'random garbage (not a TLS record)', send: () => [randomBytes(prng(7), 300).fill(0x00, 0, 1)], after: 'hold', reason: 'not-tls' },
    { listener: 'hostile', name: 'an HTTP request on the TLS port', send: () => [Buffer.from('GET / HTTP/1.1\r\nHost: ok.test\r\n\r\n')], after: 'hold', reason: 'not-tls' },
    { listener: 'hostile', name: 'an SSLv2-style hello', send: () => [Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15])], after: 'hold', reason: 'not-tls' },
    { listener: 'hostile', name: 'a TLS alert instead of a hello', send: () => [Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28])], after: 'hold', reason: 'not-tls' },
    { listener: 'hostile', name: 'a record header declaring a 64 KiB record', send: () => [OVERLONG_RECORD], after: 'hold', reason: 'invalid-hello', reply: DECODE_ERROR },
    { listener: 'hostile', name: 'a handshake header declaring a 16 MiB hello', send: () => [HUGE_HANDSHAKE], after: 'hold', reason: 'hello-too-large', reply: DECODE_ERROR },
    { listener: 'hostile', name: 'a ServerHello where the ClientHello belongs', send: () => [Buffer.concat([hello.subarray(0, 5), Buffer.from([0x02]), hello.subarray(6)])], after: 'hold', reason: 'invalid-hello', reply: DECODE_ERROR },
    { listener: 'hostile', name: 'a hello whose handshake length is 10 short', send: () => [helloClaimingLess(hello, 10)], after: 'hold', reason: 'invalid-hello', reply: DECODE_ERROR },
    { listener: 'hostile', name: 'a hello whose server_name length runs past its extension', send: () => [helloWithLyingSniLength(hello, 'ok.test')], after: 'hold', reason: 'invalid-hello', reply: DECODE_ERROR },
    { listener: 'hostile', name: 'a 70 KiB hello (over the 64 KiB cap)', send: () => oversizedHello(), after: 'hold', reason: 'hello-too-large', reply: DECODE_ERROR },
    { listener: 'hostile', name: 'half a hello, then the client closes its side', send: () => [hello.subarray(0, hello.length >> 1)], after: 'end', reason: 'truncated-hello' },
    { listener: 'hostile', name: 'half a hello, then the client resets the connection', send: () => [hello.subarray(0, hello.length >> 1)], after: 'reset', reason: 'truncated-hello' },
    { listener: 'hostile', name: 'a record header only, then the client closes its side', send: () => [hello.subarray(0, 5)], after: 'end', reason: 'truncated-hello' },
    { listener: 'hostile', name: 'a connection closed before any byte', send: () => [], after: 'end', reason: 'client-closed' },
    { listener: 'hostile', name: 'a hello whose lengths claim 1,000 bytes more than are sent', send: () => [helloClaimingMore(hello, 1_000)], after: 'hold', reason: 'sniff-timeout', late: true },
    // http-connect
    { listener: 'connect', name: 'a CONNECT line of 100 KB', send: () => [Buffer.from(`CONNECT ${'a'.repeat(100_000)}.test:443 HTTP/1.1\r\n\r\n`)], after: 'hold', reason: 'request-too-large', reply: http(400) },
    { listener: 'connect', name: 'a CONNECT line followed by 100 KB of headers', send: () => [Buffer.from(`CONNECT ok.test:443 HTTP/1.1\r\n${'X-Pad: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n'.repeat(2_500)}\r\n`)], after: 'hold', reason: 'request-too-large', reply: http(400) },
    { listener: 'connect', name: 'a 100 KB method', send: () => [Buffer.from(`${'C'.repeat(100_000)} ok.test:443 HTTP/1.1\r\n\r\n`)], after: 'hold', reason: 'bad-request', reply: http(400) },
    { listener: 'connect', name: 'a TLS ClientHello sent to the CONNECT port', send: () => [hello], after: 'hold', reason: 'bad-request', reply: http(400) },
    { listener: 'connect', name: 'CONNECT to a name with a 300-character label', send: () => [Buffer.from(`CONNECT ${'l'.repeat(300)}.test:443 HTTP/1.1\r\n\r\n`)], after: 'hold', reason: 'bad-request', reply: http(400) },
    { listener: 'connect', name: 'CONNECT to port 99999', send: () => [Buffer.from('CONNECT ok.test:99999 HTTP/1.1\r\n\r\n')], after: 'hold', reason: 'bad-request', reply: http(400) },
    { listener: 'connect', name: 'a CONNECT head that never ends', send: () => [Buffer.from('CONNECT ok.test:443 HTTP/1.1\r\nHost: ok.test\r\n')], after: 'hold', reason: 'client-silent', reply: http(408), late: true },
    { listener: 'connect', name: 'half a CONNECT line, then the client closes its side', send: () => [Buffer.from('CONNECT ok.te')], after: 'end', reason: 'client-closed' },
    // socks5
    { listener: 'socks', name: 'a SOCKS greeting offering zero methods', send: () => [Buffer.from([0x05, 0x00])], after: 'hold', reason: 'socks-invalid' },
    { listener: 'socks', name: 'a SOCKS greeting claiming 255 methods and sending 3', send: () => [Buffer.from([0x05, 0xff, 0x00, 0x01, 0x02])], after: 'hold', reason: 'client-silent', late: true },
    { listener: 'socks', name: 'a SOCKS greeting offering only username/password', send: () => [Buffer.from([0x05, 0x01, 0x02])], after: 'hold', reason: 'socks-auth-unsupported', reply: Buffer.from([0x05, 0xff]) },
    { listener: 'socks', name: 'a SOCKS4 request', send: () => [Buffer.from([0x04, 0x01, 0x01, 0xbb, 127, 0, 0, 1, 0])], after: 'hold', reason: 'not-socks5' },
    { listener: 'socks', name: 'a SOCKS request with a zero-length domain', send: () => [SOCKS_HI, Buffer.from([0x05, 0x01, 0x00, 0x03, 0x00, 0x01, 0xbb])], after: 'hold', reason: 'socks-invalid', reply: socks(0x01) },
    { listener: 'socks', name: 'a SOCKS request whose domain length claims 200 and sends 10', send: () => [SOCKS_HI, Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x03, 200]), Buffer.from('ok.test.ok')])], after: 'hold', reason: 'client-silent', reply: socks(0x01), late: true },
    { listener: 'socks', name: 'a SOCKS request with 255 bytes of binary for a domain', send: () => [SOCKS_HI, Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x03, 255]), randomBytes(prng(3), 255), Buffer.from([0x01, 0xbb])])], after: 'hold', reason: 'socks-invalid', reply: socks(0x01) },
    { listener: 'socks', name: 'a SOCKS request with a non-zero reserved byte', send: () => [SOCKS_HI, Buffer.from([0x05, 0x01, 0x07, 0x01, 127, 0, 0, 1, 0x01, 0xbb])], after: 'hold', reason: 'socks-invalid', reply: socks(0x01) },
    { listener: 'socks', name: 'a SOCKS request for port 0', send: () => [SOCKS_HI, Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x03, 7]), Buffer.from('ok.test'), Buffer.from([0, 0])])], after: 'hold', reason: 'socks-invalid', reply: socks(0x01) },
    { listener: 'socks', name: 'a SOCKS request with address type 9', send: () => [SOCKS_HI, Buffer.from([0x05, 0x01, 0x00, 0x09, 1, 2, 3, 4])], after: 'hold', reason: 'socks-address-unsupported', reply: socks(0x08) },
    { listener: 'socks', name: 'a SOCKS UDP ASSOCIATE', send: () => [SOCKS_HI, Buffer.from([0x05, 0x03, 0x00, 0x01, 0, 0, 0, 0, 0, 0])], after: 'hold', reason: 'socks-command-unsupported', reply: socks(0x07) },
    // PROXY protocol
    { listener: 'pp-untrusted', name: 'a PROXY v1 header from an untrusted peer', send: () => [Buffer.from('PROXY TCP4 203.0.113.9 10.0.0.1 1234 443\r\n'), hello], after: 'hold', reason: 'untrusted-proxy-header' },
    { listener: 'pp-untrusted', name: 'a PROXY v2 header from an untrusted peer', send: () => [v2(0x11, 12, Buffer.from([203, 0, 113, 9, 10, 0, 0, 1, 0x04, 0xd2, 0x01, 0xbb])), hello], after: 'hold', reason: 'untrusted-proxy-header' },
    { listener: 'pp-trusted', name: 'a trusted peer sending no PROXY header', send: () => [hello], after: 'hold', reason: 'proxy-header-missing' },
    { listener: 'pp-trusted', name: 'a PROXY v1 line over 107 bytes', send: () => [Buffer.from(`PROXY TCP4 203.0.113.9 10.0.0.1 1234 443${' '.repeat(200)}\r\n`)], after: 'hold', reason: 'proxy-header-invalid' },
    { listener: 'pp-trusted', name: 'a PROXY v1 header with an impossible address', send: () => [Buffer.from('PROXY TCP4 999.0.113.9 10.0.0.1 1234 443\r\n'), hello], after: 'hold', reason: 'proxy-header-invalid' },
    { listener: 'pp-trusted', name: 'a PROXY v2 header with an unknown address family', send: () => [v2(0xf1, 0, Buffer.alloc(0))], after: 'hold', reason: 'proxy-header-invalid' },
    { listener: 'pp-trusted', name: 'a PROXY v2 header whose length claims 12 and whose addresses need 36', send: () => [v2(0x21, 12, Buffer.alloc(12)), hello], after: 'hold', reason: 'proxy-header-invalid' },
  ];

  it('garbage, truncated, lying and oversized input on every listener mode (20 of each at once): each refused with its reason, no crash', async () => {
    const eventsBefore = await settledCount(stack);
    const conns = cases.flatMap((c) => Array.from({ length: 20 }, () => ({ c, conn: sendConn(stack.port(c.listener), c.send(), c.after) })));
    const results = await Promise.all(conns.map(async ({ c, conn }) => ({ c, r: await conn.closed, port: conn.localPort() })));
    for (const { c, r } of results) {
      // refused at once, or (waiting for bytes that never come) at the sniff timeout
      if (c.late) expect(r.afterMs, c.name).toBeGreaterThanOrEqual(CASES_SNIFF_MS - 50);
      expect(r.afterMs, c.name).toBeLessThanOrEqual(c.late ? CASES_SNIFF_MS + RELEASE_SLACK_MS : CASES_SNIFF_MS - 500);
      if (c.reply) expect(r.received.indexOf(c.reply), `${c.name}: got ${r.received.subarray(0, 16).toString('hex')}`).toBeGreaterThanOrEqual(0);
    }
    await waitFor(async () => flowsSince(await stack.events(), eventsBefore).length >= 2 * conns.length, 10_000);
    const events = flowsSince(await stack.events(), eventsBefore);
    const starts = events.filter((e) => e.event === 'flow.start');
    // A client that resets before the edge got round to accept() has no peer address left to
    // read (getpeername fails): its record says src ":0". Such records are matched by listener.
    const anonymous = starts.filter((e) => e.src === ':0');
    for (const c of cases) {
      const got = results.filter((x) => x.c === c).map((x) => starts.find((e) => e.listener === c.listener && e.src === `127.0.0.1:${x.port}`) ?? (c.after === 'reset' ? anonymous.splice(anonymous.findIndex((e) => e.listener === c.listener), 1)[0] : undefined));
      expect(got.map((e) => e?.reason), c.name).toEqual(Array(20).fill(c.reason));
      for (const e of got) expect(e, c.name).toMatchObject({ verdict: 'deny', ruleId: '' });
    }
    expect(pairs(events)).toEqual({ flows: conns.length, bad: [] });
    // still serving, on every listener
    expect((await legitHandshake(stack.port(), 'ok.test', certs.ca)).body).toBe('hello from upstream ok.test\n');
    const viaConnect = await sendConn(stack.port('connect'), [Buffer.from(`CONNECT srv-end.short.test:${raw.port} HTTP/1.1\r\n\r\nsrv-end.short.test`)], 'hold').closed;
    expect(viaConnect.received.toString('latin1')).toMatch(/^HTTP\/1\.1 200 Connection Established\r\n\r\nb{512}$/);
    await waitFor(() => stack.edge.activeFlows() === 0, 5_000);
  });

  // BUG: libs/edge/src/intake.ts readProxyStage reads a PROXY header to its end (or to the sniff
  // deadline) before it asks whether the peer is trusted. An untrusted peer that sends the 16-byte
  // v2 prefix declaring 65,535 bytes (or a v1 line without its CRLF) and then nothing is held for
  // the whole sniff timeout, with a 64 KiB zeroed buffer allocated on those 16 bytes (the soak
  // measures ~71 KiB of RSS per such connection), and is then audited as `not-tls` instead of
  // `untrusted-proxy-header`. The peer address is known at accept: refuse as soon as the bytes
  // match a PROXY signature. Unskip once fixed.
  it('an untrusted peer starting a PROXY header and going quiet is refused at once as untrusted-proxy-header', async () => {
    const eventsBefore = await settledCount(stack);
    const partial = [
      Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0xff, 0xff, 1, 2, 3]),
      Buffer.from('PROXY TCP4 203.0.113.9 10.0.0.1 1234'),
    ];
    const conns = partial.map((b) => sendConn(stack.port('pp-untrusted'), [b], 'hold'));
    for (const c of conns) expect((await c.closed).afterMs).toBeLessThan(CASES_SNIFF_MS / 2);
    await waitFor(async () => flowsSince(await stack.events(), eventsBefore).length >= 4);
    const starts = flowsSince(await stack.events(), eventsBefore).filter((e) => e.event === 'flow.start');
    expect(starts.map((e) => e.reason)).toEqual(['untrusted-proxy-header', 'untrusted-proxy-header']);
  });

  it('500 connections of seeded random bytes (half of them posing as TLS records): every one closed and audited with a known reason', async () => {
    const eventsBefore = await settledCount(stack);
    const rand = prng(20_250_101);
    const conns: HostileConn[] = [];
    for (let i = 0; i < 500; i++) {
      const body = randomBytes(rand, 1 + Math.floor(rand() * 600));
      if (i % 2) body.set([0x16, 0x03, Math.floor(rand() * 5)].slice(0, body.length));
      conns.push(sendConn(stack.port(), [body], rand() < 0.5 ? 'end' : 'hold'));
    }
    const results = await Promise.all(conns.map((c) => c.closed));
    for (const r of results) expect(r.afterMs).toBeLessThanOrEqual(SNIFF_MS + RELEASE_SLACK_MS);
    await waitFor(async () => flowsSince(await stack.events(), eventsBefore).length >= 1_000, 10_000);
    const events = flowsSince(await stack.events(), eventsBefore);
    expect(pairs(events).bad).toEqual([]);
    const reasons = new Set(events.filter((e) => e.event === 'flow.start').map((e) => e.reason));
    expect([...reasons].filter((r) => !['not-tls', 'invalid-hello', 'hello-too-large', 'truncated-hello', 'sniff-timeout'].includes(r))).toEqual([]);
    expect((await legitHandshake(stack.port(), 'ok.test', certs.ca)).ok).toBe(true);
  });

  it('2,000 sequential short flows, every close order: no socket left in CLOSE_WAIT or FIN_WAIT_2, no fd growth', async () => {
    const port = stack.port('raw');
    const patterns = shortFlows({ sni: port, connect: stack.port('connect'), socks: stack.port('socks'), upstream: raw.port }, hellos);
    const runOne = async (i: number): Promise<void> => {
      const p = patterns[i % patterns.length] as (typeof patterns)[number];
      const r = await p.run().closed;
      if (r.afterMs > 3_000) throw new Error(`${p.name}: took ${r.afterMs} ms`);
    };
    for (let i = 0; i < 50; i++) await runOne(i); // warm-up: DNS cache, gRPC stream, buffers
    await waitFor(() => stack.edge.activeFlows() === 0, 5_000);
    await sleep(200);
    const eventsBefore = await settledCount(stack);
    const fdsBefore = fdCount();
    const t0 = Date.now();
    const N = 2_000;
    for (let i = 0; i < N; i++) await runOne(i);
    const ms = Date.now() - t0;
    await waitFor(() => stack.edge.activeFlows() === 0, 5_000);
    await waitFor(async () => flowsSince(await stack.events(), eventsBefore).length >= 2 * N, 10_000);
    // give the edge's refusal timers (2 s to linger after an alert) no chance to hide anything
    await sleep(300);
    const sockets = await socketStates([port, stack.port('connect'), stack.port('socks'), raw.port]);
    const fdsAfter = fdCount();
    console.log(`[hostile] ${N} short flows in ${ms} ms; fds ${fdsBefore} → ${fdsAfter}; sockets on edge/upstream ports: ${JSON.stringify(sockets.states)}`);
    expect(stuck(sockets), sockets.lines.slice(0, 20).join('\n')).toBe(0);
    expect(sockets.states['ESTAB'] ?? 0).toBe(0);
    expect(fdsAfter).toBeLessThanOrEqual(fdsBefore + 5);
    const events = flowsSince(await stack.events(), eventsBefore);
    expect(pairs(events)).toEqual({ flows: N, bad: [] });
    expect(raw.sockets.size).toBe(0);
  });

});
