// The edge's connect and relay stages: the SSRF guard on resolved addresses, half-close both
// ways, fail modes when the policy service is gone, and connection limits.
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { AddressInfo, Server, Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, startTlsUpstream, waitFor } from '@portcullis/testing';
import type { TestCerts, TlsUpstream } from '@portcullis/testing';
import { captureHello } from '../support/hello';
import { startStack } from '../support/stack';
import type { Stack } from '../support/stack';
import { nodeTls } from '../support/tls-client';

const profile = (extra = '') => `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: connect
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: exempt
    action: allow
    fqdns: ["exempt.test"]
    allowPrivate: ["127.0.0.1/32"]
  - id: public-only
    action: allow
    fqdns: [".ssrf.test", "loop.test"]
${extra}`;

// Every range the guard must refuse, each reached through an edge.resolve answer.
const SSRF: [string, string][] = [
  ['loopback', '127.0.0.1'],
  ['rfc1918-10', '10.0.0.1'],
  ['rfc1918-172', '172.16.0.1'],
  ['rfc1918-192', '192.168.0.1'],
  ['cgnat', '100.64.0.1'],
  ['metadata', '169.254.169.254'],
  ['multicast', '224.0.0.1'],
  ['unspecified', '0.0.0.0'],
  ['v6-loopback', '::1'],
  ['v6-ula', 'fd00::1'],
  ['v6-link-local', 'fe80::1'],
  ['v4-mapped', '::ffff:10.0.0.1'],
  ['nat64', '64:ff9b::a9fe:a9fe'],
  ['6to4', '2002:a9fe:a9fe::1'],
  ['teredo', '2001:0:4136:e378:8000:63bf:3fff:fdd2'],
];

describe('edge connect: SSRF guard', () => {
  let certs: TestCerts;
  let upstream: TlsUpstream;
  let stack: Stack;

  beforeAll(async () => {
    certs = makeCerts(['exempt.test', 'loop.test']);
    upstream = await startTlsUpstream(certs);
    stack = await startStack(profile(), {
      listeners: [{ name: 'tls', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: upstream.port }],
      resolve: { 'exempt.test': ['127.0.0.1'], 'loop.test': ['127.0.0.1'], ...Object.fromEntries(SSRF.map(([n, a]) => [`${n}.ssrf.test`, [a]])) },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.close();
  });

  it.each(SSRF)('refuses an allowed name that resolves to %s (%s) with reason private-destination', async (n) => {
    const r = await nodeTls(stack.port(), `${n}.ssrf.test`, certs.ca);
    expect(r.errorCode).toBe('ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    await waitFor(async () => (await stack.events()).some((e) => e.sni === `${n}.ssrf.test` && e.event === 'flow.end'));
    const start = (await stack.events()).find((e) => e.sni === `${n}.ssrf.test` && e.event === 'flow.start');
    expect(start).toMatchObject({ verdict: 'deny', reason: 'private-destination', ruleId: 'public-only' });
  });

  it("allows the same kind of address when the matching rule's allowPrivate covers it", async () => {
    const before = upstream.connections.length;
    expect((await nodeTls(stack.port(), 'loop.test', certs.ca)).errorCode).toBe('ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    expect(upstream.connections.length).toBe(before);
    const ok = await nodeTls(stack.port(), 'exempt.test', certs.ca);
    expect(ok.body).toBe('hello from upstream exempt.test\n');
  });
});

/** A plain TCP upstream that records what it got and runs a script per connection. */
function tcpUpstream(script: (s: Socket, got: Buffer[]) => void): Promise<{ server: Server; port: number; got: Buffer[][] }> {
  const got: Buffer[][] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const mine: Buffer[] = [];
    got.push(mine);
    s.on('data', (d: Buffer) => mine.push(d));
    s.on('error', () => undefined);
    script(s, mine);
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, port: (server.address() as AddressInfo).port, got })));
}

// Both data planes: the native relay thread (the default) and the JavaScript relay (edge.relay:
// node, and every CONNECT/SOCKS tunnel) must behave the same.
const RELAYS = ['native', 'node'] as const;

describe.each(RELAYS)('edge relay (%s): half-close and resets', (relay) => {
  let stack: Stack;
  let hello: Buffer;
  const BIG = 4 * 1024 * 1024;
  let clientFirst: Awaited<ReturnType<typeof tcpUpstream>>;
  let serverFirst: Awaited<ReturnType<typeof tcpUpstream>>;
  let resetter: Awaited<ReturnType<typeof tcpUpstream>>;
  let exchange: Awaited<ReturnType<typeof tcpUpstream>>;
  const upstreamClosed: Promise<void>[] = [];
  // 8 MiB of random bytes each way: many of the native relay's 256 KiB reads, partial sends included
  const UP = randomBytes(8 * 1024 * 1024);
  const DOWN = randomBytes(8 * 1024 * 1024);

  beforeAll(async () => {
    hello = await captureHello('half.test');
    // resets the connection as soon as the client's first bytes arrive
    resetter = await tcpUpstream((s) => s.once('data', () => s.resetAndDestroy()));
    // sends DOWN at once and keeps what the client sends until the client's end
    exchange = await tcpUpstream((s) => s.end(DOWN));
    // replies only after the client has shut down its write side
    clientFirst = await tcpUpstream((s) => {
      upstreamClosed.push(new Promise((r) => s.once('close', () => r())));
      s.on('end', () => s.end(Buffer.alloc(BIG, 0x61)));
    });
    // sends everything and half-closes at once, then keeps reading
    serverFirst = await tcpUpstream((s) => s.end(Buffer.alloc(1000, 0x62)));
    stack = await startStack(profile('  - id: half\n    action: allow\n    fqdns: ["half.test"]\n    allowPrivate: ["127.0.0.0/8"]\n'), {
      listeners: [
        { name: 'tls', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: clientFirst.port },
        { name: 'server-first', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: serverFirst.port },
        { name: 'reset', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: resetter.port },
        { name: 'exchange', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: exchange.port },
      ],
      resolve: { 'half.test': ['127.0.0.1'] },
      relay,
    });
    expect(stack.edge.relay).toBe(relay);
  });
  it('SNI listeners are accepted and sniffed by the relay thread under the native relay, by Node under the JavaScript one', () => {
    for (const name of ['tls', 'server-first', 'reset', 'exchange']) expect(stack.edge.listeners[name]?.intake).toBe(relay === 'native' ? 'native' : 'node');
  });

  afterAll(async () => {
    await stack?.stop();
    clientFirst?.server.close();
    serverFirst?.server.close();
    resetter?.server.close();
    exchange?.server.close();
  });

  it('8 MiB of random bytes each way at once arrive intact, and flow.end counts them', async () => {
    const s = connect({ port: stack.port('exchange'), host: '127.0.0.1', allowHalfOpen: true });
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    await new Promise((r) => s.once('connect', r));
    const src = `127.0.0.1:${s.localPort}`;
    const finished = new Promise((r) => s.once('finish', r)); // all of UP handed to the kernel
    s.end(Buffer.concat([hello, UP]));
    await new Promise((r) => s.once('end', r));
    await finished;
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    expect(sha(Buffer.concat(got))).toBe(sha(DOWN));
    await waitFor(() => Buffer.concat(exchange.got[0] ?? []).length === hello.length + UP.length);
    s.destroy();
    expect(sha(Buffer.concat(exchange.got[0] ?? []))).toBe(sha(Buffer.concat([hello, UP])));
    expect(await endOf(src)).toMatchObject({ bytesUp: hello.length + UP.length, bytesDown: DOWN.length });
  });

  const endOf = async (src: string): Promise<Record<string, unknown> | undefined> => {
    await waitFor(async () => (await stack.events()).some((e) => e.event === 'flow.end' && e.src === src));
    return (await stack.events()).find((e) => e.event === 'flow.end' && e.src === src);
  };

  it('a client that resets mid-flow: the upstream connection is closed, flow.end says client-error:ECONNRESET', async () => {
    const before = clientFirst.got.length;
    const s = connect({ port: stack.port(), host: '127.0.0.1' });
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    const src = `127.0.0.1:${s.localPort}`;
    s.write(hello);
    await waitFor(() => Buffer.concat(clientFirst.got[before] ?? []).length === hello.length);
    s.resetAndDestroy();
    await upstreamClosed[before];
    expect(await endOf(src)).toMatchObject({ closeReason: 'client-error:ECONNRESET', bytesUp: hello.length, bytesDown: 0 });
  });

  it('an upstream that resets: the client connection is closed, flow.end says upstream-error:ECONNRESET', async () => {
    const s = connect({ port: stack.port('reset'), host: '127.0.0.1' });
    s.on('error', () => undefined);
    const closed = new Promise((r) => s.once('close', r));
    await new Promise((r) => s.once('connect', r));
    const src = `127.0.0.1:${s.localPort}`;
    s.write(hello);
    await closed;
    expect(await endOf(src)).toMatchObject({ closeReason: 'upstream-error:ECONNRESET', bytesUp: hello.length });
  });

  it('a client that sends, shuts down its write side, then reads a long reply gets all of it', async () => {
    const before = clientFirst.got.length;
    const s = connect({ port: stack.port(), host: '127.0.0.1', allowHalfOpen: true });
    let received = 0;
    s.on('data', (d: Buffer) => (received += d.length));
    await new Promise((r) => s.once('connect', r));
    const src = `127.0.0.1:${s.localPort}`;
    s.end(Buffer.concat([hello, Buffer.from('request body')]));
    await new Promise((r) => s.once('end', r));
    expect(received).toBe(BIG);
    s.destroy();
    expect(Buffer.concat(clientFirst.got[before] ?? []).equals(Buffer.concat([hello, Buffer.from('request body')]))).toBe(true);
    expect(await endOf(src)).toMatchObject({ bytesUp: hello.length + 12, bytesDown: BIG });
  });

  it('an upstream that half-closes first still receives everything the client sends afterwards', async () => {
    const s = connect({ port: stack.port('server-first'), host: '127.0.0.1', allowHalfOpen: true });
    const closed = new Promise((r) => s.once('close', r));
    let received = 0;
    s.on('data', (d: Buffer) => (received += d.length));
    await new Promise((r) => s.once('connect', r));
    s.write(hello);
    await new Promise((r) => s.once('end', r)); // the server's FIN reached us
    expect(received).toBe(1000);
    s.end(Buffer.alloc(50_000, 0x63)); // we can still send
    await waitFor(() => Buffer.concat(serverFirst.got[0] ?? []).length === hello.length + 50_000);
    await closed;
  });
});

describe.each(RELAYS)('edge relay (%s): upstream connect outcomes', (relay) => {
  const CONNECT_TIMEOUT_MS = 300;
  let certs: TestCerts;
  let upstream: TlsUpstream;
  let stack: Stack;
  let stalled: ChildProcess | undefined;
  const fillers: Socket[] = [];

  beforeAll(async () => {
    certs = makeCerts(['one.up.test', 'two.up.test', 'refused.up.test', 'stalled.up.test']);
    upstream = await startTlsUpstream(certs); // 127.0.0.1 only: 127.0.0.2 refuses
    // a port nothing listens on
    const closed = await new Promise<number>((r) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as AddressInfo;
        srv.close(() => r(port));
      });
    });
    // a listener that never accepts (its process stopped) and whose queue is full: SYNs go unanswered
    stalled = spawn(process.execPath, ['-e', "require('net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, function () { console.log(this.address().port) })"], { stdio: ['ignore', 'pipe', 'ignore'] });
    const stalledPort = await new Promise<number>((r) => stalled?.stdout?.once('data', (d: Buffer) => r(Number(d.toString().trim()))));
    stalled.kill('SIGSTOP');
    for (let k = 0; k < 4; k++) {
      const f = connect({ port: stalledPort, host: '127.0.0.1' });
      f.on('error', () => undefined);
      fillers.push(f);
    }
    await new Promise((r) => setTimeout(r, 200));
    stack = await startStack(profile('  - id: up\n    action: allow\n    fqdns: [".up.test"]\n    allowPrivate: ["127.0.0.0/8"]\n'), {
      listeners: [
        { name: 'tls', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: upstream.port },
        { name: 'refused', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: closed },
        { name: 'stalled', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: stalledPort },
      ],
      resolve: { 'one.up.test': ['127.0.0.1'], 'two.up.test': ['127.0.0.2', '127.0.0.1'], 'refused.up.test': ['127.0.0.1'], 'stalled.up.test': ['127.0.0.1'] },
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      relay,
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.close();
    for (const f of fillers) f.destroy();
    stalled?.kill('SIGKILL');
  });

  const recordsOf = async (sni: string): Promise<Record<string, unknown>[]> => {
    await waitFor(async () => (await stack.events()).some((e) => e.event === 'flow.end' && e.sni === sni));
    return (await stack.events()).filter((e) => e.sni === sni);
  };

  it('one address: connected (by the relay thread under the native relay), the reply arrives, flow.start names the address', async () => {
    const r = await nodeTls(stack.port(), 'one.up.test', certs.ca);
    expect(r.body).toBe('hello from upstream one.up.test\n');
    const [start, end] = await recordsOf('one.up.test');
    expect(start).toMatchObject({ event: 'flow.start', verdict: 'allow', dst: `127.0.0.1:${upstream.port}` });
    expect(end).toMatchObject({ event: 'flow.end', closeReason: expect.stringMatching(/^(client|upstream)-closed$/) });
    expect(end?.['bytesUp']).toBeGreaterThan(200);
    expect(end?.['bytesDown']).toBeGreaterThan(200);
  });

  it('two addresses, the first refusing: Happy Eyeballs reaches the second and the flow is relayed', async () => {
    const r = await nodeTls(stack.port(), 'two.up.test', certs.ca);
    expect(r.body).toBe('hello from upstream two.up.test\n');
    const [start, end] = await recordsOf('two.up.test');
    expect(start).toMatchObject({ verdict: 'allow', dst: `127.0.0.1:${upstream.port}` });
    expect(end?.['bytesDown']).toBeGreaterThan(200);
  });

  it('an address that refuses: the client gets internal_error, the records say connect-refused', async () => {
    const r = await nodeTls(stack.port('refused'), 'refused.up.test', certs.ca);
    expect(r.errorCode).toBe('ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR');
    const [start, end] = await recordsOf('refused.up.test');
    expect(start).toMatchObject({ event: 'flow.start', verdict: 'allow', ruleId: 'up' });
    expect(String(start?.['detail'])).toContain('ECONNREFUSED');
    expect(end).toMatchObject({ event: 'flow.end', closeReason: 'connect-refused', bytesUp: 0, bytesDown: 0 });
  });

  it('an address that never answers: refused at connectTimeoutMs with internal_error, the records say connect-timeout', async () => {
    const t0 = Date.now();
    const r = await nodeTls(stack.port('stalled'), 'stalled.up.test', certs.ca, { timeoutMs: 10_000 });
    const ms = Date.now() - t0;
    expect(r.errorCode).toBe('ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR');
    expect(ms).toBeGreaterThanOrEqual(CONNECT_TIMEOUT_MS - 20);
    expect(ms).toBeLessThan(CONNECT_TIMEOUT_MS + 700);
    const [start, end] = await recordsOf('stalled.up.test');
    expect(String(start?.['detail'])).toContain(`within ${CONNECT_TIMEOUT_MS} ms`);
    expect(end).toMatchObject({ closeReason: 'connect-timeout' });
  });
});

describe.each(RELAYS)('edge listeners (%s): IPv6 and a port already taken', (relay) => {
  let certs: TestCerts;
  let upstream: TlsUpstream;

  beforeAll(async () => {
    certs = makeCerts(['six.up.test']);
    upstream = await startTlsUpstream(certs);
  });
  afterAll(async () => {
    await upstream?.close();
  });

  it('an SNI listener on [::1] serves, and the records carry the client IPv6 address', async () => {
    const stack = await startStack(profile('  - id: up\n    action: allow\n    fqdns: [".up.test"]\n    allowPrivate: ["127.0.0.0/8"]\n'), {
      listeners: [{ name: 'tls', mode: 'sni', listen: '[::1]:0', upstreamPort: upstream.port }],
      resolve: { 'six.up.test': ['127.0.0.1'] },
      relay,
    });
    try {
      expect(stack.edge.listeners['tls']?.intake).toBe(relay === 'native' ? 'native' : 'node');
      const r = await new Promise<{ body: string; local: string }>((resolve, reject) => {
        const s = tlsConnect({ host: '::1', port: stack.port(), servername: 'six.up.test', ca: certs.ca });
        let body = '';
        s.on('data', (d: Buffer) => (body += d.toString()));
        s.once('end', () => resolve({ body, local: `${s.localAddress ?? ''}:${s.localPort ?? 0}` }));
        s.once('error', reject);
      });
      expect(r.body).toBe('hello from upstream six.up.test\n');
      await waitFor(async () => (await stack.events()).some((e) => e.event === 'flow.end' && e.sni === 'six.up.test'));
      const end = (await stack.events()).find((e) => e.event === 'flow.end' && e.sni === 'six.up.test');
      expect(end).toMatchObject({ src: r.local, verdict: 'allow' });
    } finally {
      await stack.stop();
    }
  });

  it('a listen address already taken stops the start with EADDRINUSE', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const { port } = taken.address() as AddressInfo;
    try {
      await expect(startStack(profile(), { listeners: [{ name: 'tls', mode: 'sni', listen: `127.0.0.1:${port}`, upstreamPort: upstream.port }], relay })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      taken.close();
    }
  });
});

describe.each(RELAYS)('edge relay (%s): idle timeout and backpressure', (relay) => {
  const IDLE_MS = 400;
  let stack: Stack;
  let hello: Buffer;
  let echo: Awaited<ReturnType<typeof tcpUpstream>>;
  let firehose: Awaited<ReturnType<typeof tcpUpstream>>;
  const HOSE = 64 * 1024 * 1024;
  const hoseWriters: Socket[] = [];

  beforeAll(async () => {
    hello = await captureHello('idle.test');
    echo = await tcpUpstream((s) => s.on('data', (d: Buffer) => s.write(d)));
    // writes 64 MiB as fast as the edge takes it
    firehose = await tcpUpstream((s) => {
      hoseWriters.push(s);
      s.end(Buffer.alloc(HOSE, 0x64));
    });
    stack = await startStack(profile('  - id: idle\n    action: allow\n    fqdns: ["idle.test"]\n    allowPrivate: ["127.0.0.0/8"]\n'), {
      listeners: [
        { name: 'echo', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: echo.port },
        { name: 'hose', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: firehose.port },
      ],
      resolve: { 'idle.test': ['127.0.0.1'] },
      idleTimeoutMs: IDLE_MS,
      relay,
    });
    expect(stack.edge.relay).toBe(relay);
  });
  afterAll(async () => {
    await stack?.stop();
    echo?.server.close();
    firehose?.server.close();
  });

  const open = async (port: number): Promise<{ s: Socket; src: string; closedAt: Promise<number> }> => {
    const s = connect({ port, host: '127.0.0.1' }); // closes when the edge closes
    s.on('error', () => undefined);
    s.resume(); // reads (and drops) what comes back, so the edge's FIN is seen
    const closedAt = new Promise<number>((r) => s.once('close', () => r(Date.now())));
    await new Promise((r) => s.once('connect', r));
    return { s, src: `127.0.0.1:${s.localPort}`, closedAt };
  };
  const endOf = async (src: string): Promise<Record<string, unknown> | undefined> => {
    await waitFor(async () => (await stack.events()).some((e) => e.event === 'flow.end' && e.src === src));
    return (await stack.events()).find((e) => e.event === 'flow.end' && e.src === src);
  };

  it('a relayed flow with no bytes either way is closed after idleTimeoutMs, reason idle-timeout', async () => {
    const { s, src, closedAt } = await open(stack.port('echo'));
    const echoed = new Promise((r) => s.once('data', r));
    s.write(hello);
    await echoed; // relayed: the echo came back
    const lastByte = Date.now();
    const after = (await closedAt) - lastByte;
    expect(after).toBeGreaterThanOrEqual(IDLE_MS - 5);
    expect(after).toBeLessThan(IDLE_MS + 400);
    expect(await endOf(src)).toMatchObject({ closeReason: 'idle-timeout', bytesUp: hello.length, bytesDown: hello.length });
  });

  it('a flow that keeps talking (upload or download) is never idle, and is closed once it stops', async () => {
    const { s, src, closedAt } = await open(stack.port('echo'));
    let closed = false;
    void closedAt.then(() => (closed = true));
    s.write(hello);
    const started = Date.now();
    // 2.5 idle periods of a byte every 100 ms: each is echoed, so both directions are busy
    let lastWrite = started;
    while (Date.now() - started < IDLE_MS * 2.5) {
      s.write('x');
      lastWrite = Date.now();
      await new Promise((r) => setTimeout(r, 100));
      expect(closed).toBe(false);
    }
    expect((await closedAt) - lastWrite).toBeGreaterThanOrEqual(IDLE_MS - 5);
    expect((await endOf(src))?.['closeReason']).toBe('idle-timeout');
  });

  it('a client that does not read holds the upstream back instead of filling the edge\'s memory, and then gets every byte', async () => {
    const { s, src, closedAt } = await open(stack.port('hose'));
    s.pause();
    s.write(hello);
    await waitFor(() => hoseWriters.length === 1).catch(async (err: unknown) => {
      // (once in CI, thread pass, 2026-11-28: the upstream never saw the flow) say what became of it
      const seen = (await stack.events()).filter((e) => e.src === src);
      throw new Error(`the upstream never got the flow from ${src}; its events: ${JSON.stringify(seen)}`, { cause: err });
    });
    const writer = hoseWriters[0] as Socket;
    await new Promise((r) => setTimeout(r, IDLE_MS / 2)); // less than the idle timeout: bytes moved a moment ago
    // the edge stopped reading: most of the 64 MiB still waits in the upstream's own buffer
    expect(writer.writableLength).toBeGreaterThan(HOSE / 2);
    let received = 0;
    s.on('data', (d: Buffer) => (received += d.length));
    s.resume();
    await new Promise((r) => s.once('end', r));
    expect(received).toBe(HOSE);
    s.end();
    await closedAt;
    expect(await endOf(src)).toMatchObject({ bytesDown: HOSE, closeReason: 'upstream-closed' });
  });
});

describe('edge decide: fail modes and limits', () => {
  let certs: TestCerts;
  let upstream: TlsUpstream;
  const stacks: Stack[] = [];
  const extra = '  - id: fm\n    action: allow\n    fqdns: [".fm.test"]\n    allowPrivate: ["127.0.0.0/8"]\n';

  beforeAll(async () => {
    certs = makeCerts(['a.fm.test', 'b.fm.test', 'c.fm.test']);
    upstream = await startTlsUpstream(certs);
  });
  afterEach(async () => {
    for (const s of stacks.splice(0)) await s.stop();
  });
  afterAll(async () => upstream?.close());

  const make = async (edge: Record<string, unknown>, policy: Record<string, unknown> = {}): Promise<Stack> => {
    const s = await startStack(profile(extra), { listeners: [{ name: 'tls', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: upstream.port }], resolve: { 'a.fm.test': ['127.0.0.1'], 'b.fm.test': ['127.0.0.1'], 'c.fm.test': ['127.0.0.1'] }, ...edge }, policy);
    stacks.push(s);
    return s;
  };
  const startOf = async (s: Stack, sni: string) => {
    await waitFor(async () => (await s.events()).some((e) => e.sni === sni && e.event === 'flow.start'));
    return (await s.events()).filter((e) => e.sni === sni && e.event === 'flow.start').at(-1);
  };

  it('failMode closed (the default): policy service gone → refused with reason policy-unavailable', async () => {
    const s = await make({});
    await s.policy.stop();
    const r = await nodeTls(s.port(), 'a.fm.test', certs.ca);
    expect(r.errorCode).toBe('ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    expect(await startOf(s, 'a.fm.test')).toMatchObject({ verdict: 'deny', reason: 'policy-unavailable' });
  });

  it('failMode open: policy service gone → allowed with reason fail-open', async () => {
    // fail-open knows no rule, so only the global exemption lets it reach the loopback upstream
    const s = await make({ failMode: 'open', allowPrivate: ['127.0.0.0/8'] });
    await s.policy.stop();
    const r = await nodeTls(s.port(), 'a.fm.test', certs.ca);
    expect(r.body).toBe('hello from upstream a.fm.test\n');
    expect(await startOf(s, 'a.fm.test')).toMatchObject({ verdict: 'allow', reason: 'fail-open' });
  });

  it('serveStaleMs: a verdict that expired less than serveStaleMs ago serves while the service is gone, then no longer', async () => {
    const s = await make({ serveStaleMs: 1_500 }, { verdictTtlMs: 200 });
    // the error code too: this first flow failed once in CI with an empty body and no other clue
    const first = await nodeTls(s.port(), 'b.fm.test', certs.ca);
    expect({ body: first.body, errorCode: first.errorCode }).toEqual({ body: 'hello from upstream b.fm.test\n', errorCode: undefined });
    await s.policy.stop();
    await new Promise((r) => setTimeout(r, 400)); // the verdict's 200 ms TTL has passed
    expect((await nodeTls(s.port(), 'b.fm.test', certs.ca)).body).toBe('hello from upstream b.fm.test\n');
    expect(await startOf(s, 'b.fm.test')).toMatchObject({ verdict: 'allow', reason: 'serve-stale', ruleId: 'fm' });
    // a name never decided has nothing stale to serve
    expect((await nodeTls(s.port(), 'c.fm.test', certs.ca)).errorCode).toBe('ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    expect(await startOf(s, 'c.fm.test')).toMatchObject({ verdict: 'deny', reason: 'policy-unavailable' });
    await new Promise((r) => setTimeout(r, 1_500)); // now stale for longer than serveStaleMs
    expect((await nodeTls(s.port(), 'b.fm.test', certs.ca)).errorCode).toBe('ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    expect(await startOf(s, 'b.fm.test')).toMatchObject({ verdict: 'deny', reason: 'policy-unavailable' });
  });

  it('per-source connection limit: connections beyond it are refused, audited, and the rest keep working', async () => {
    const s = await make({ maxConnectionsPerSource: 2, sniffTimeoutMs: 3_000 });
    const silent = await Promise.all([0, 1].map(() => new Promise<Socket>((r) => {
      const c = connect({ port: s.port(), host: '127.0.0.1' }, () => r(c));
      c.on('error', () => undefined);
    })));
    await new Promise((r) => setTimeout(r, 50));
    const third = connect({ port: s.port(), host: '127.0.0.1' });
    third.on('error', () => undefined);
    await new Promise((r) => third.once('close', r));
    await waitFor(async () => (await s.events()).some((e) => e.reason === 'source-limit'));
    for (const c of silent) c.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect((await nodeTls(s.port(), 'a.fm.test', certs.ca)).body).toBe('hello from upstream a.fm.test\n');
  });
});
