// Every way in: HTTP CONNECT (curl, openssl), SOCKS5 (curl), server-speaks-first through a tunnel,
// the domain-fronting guard, and PROXY protocol v1/v2 from trusted and untrusted peers.
import { createServer as createHttps } from 'node:https';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, waitFor } from '@portcullis/testing';
import type { TestCerts } from '@portcullis/testing';
import { run } from '../support/cli';
import { captureHello } from '../support/hello';
import { startStack } from '../support/stack';
import type { Stack } from '../support/stack';

const PROFILE = `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: modes
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: ok
    action: allow
    fqdns: ["ok.test", "other.test", "ssh.test"]
    allowPrivate: ["127.0.0.0/8"]
  - id: from-partner
    action: allow
    fqdns: ["partner.test"]
    sources: ["203.0.113.0/24"]
    allowPrivate: ["127.0.0.0/8"]
`;


function proxyV2(src: [string, number], dst: [string, number], opts: { local?: boolean; tlv?: Buffer } = {}): Buffer {
  const tlv = opts.tlv ?? Buffer.alloc(0);
  const addr = Buffer.alloc(12);
  src[0].split('.').forEach((o, i) => addr.writeUInt8(Number(o), i));
  dst[0].split('.').forEach((o, i) => addr.writeUInt8(Number(o), 4 + i));
  addr.writeUInt16BE(src[1], 8);
  addr.writeUInt16BE(dst[1], 10);
  const head = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, opts.local ? 0x20 : 0x21, 0x11, 0, 0]);
  head.writeUInt16BE(addr.length + tlv.length, 14);
  return Buffer.concat([head, addr, tlv]);
}

/** Raw TCP client: writes chunks (with a pause between), collects the reply until close or a timeout. */
function raw(port: number, chunks: Buffer[], opts: { waitMs?: number; pauseMs?: number } = {}): Promise<Buffer> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const s = connect({ port, host: '127.0.0.1', noDelay: true });
    const t = setTimeout(() => s.destroy(), opts.waitMs ?? 2_000);
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(t);
      resolve(Buffer.concat(got));
    });
    s.on('connect', async () => {
      for (const c of chunks) {
        s.write(c);
        if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
      }
    });
  });
}

describe('edge listener modes', () => {
  let certs: TestCerts;
  let https: Server;
  let httpsPort: number;
  let banner: Server;
  let bannerPort: number;
  let stack: Stack;

  beforeAll(async () => {
    certs = makeCerts(['ok.test', 'other.test', 'partner.test']);
    https = createHttps({ cert: certs.cert, key: certs.key }, (req, res) => res.end(`https upstream saw ${req.headers.host}\n`));
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', () => r()));
    httpsPort = (https.address() as AddressInfo).port;
    // a server that speaks first, like sshd or an SMTP server
    banner = createServer((s) => {
      s.write('SSH-2.0-PortcullisTest\r\n');
      s.on('data', (d: Buffer) => s.write(`echo:${d.toString()}`));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => banner.listen(0, '127.0.0.1', () => r()));
    bannerPort = (banner.address() as AddressInfo).port;
    const resolve = { 'ok.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'], 'ssh.test': ['127.0.0.1'], 'partner.test': ['127.0.0.1'], 'denied.test': ['127.0.0.1'] };
    stack = await startStack(PROFILE, {
      listeners: [
        { name: 'connect', mode: 'http-connect', listen: '127.0.0.1:0' },
        { name: 'socks', mode: 'socks5', listen: '127.0.0.1:0' },
        { name: 'pp', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: httpsPort, proxyProtocol: 'any', trustedProxies: ['127.0.0.1/32'] },
        { name: 'pp-strange', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: httpsPort, proxyProtocol: 'v2', trustedProxies: ['10.9.9.9/32'] },
      ],
      resolve,
      sniffTimeoutMs: 1_500,
    });
  });
  afterAll(async () => {
    await stack?.stop();
    https?.close();
    banner?.close();
  });

  const lastStart = async (pred: (e: Awaited<ReturnType<Stack['events']>>[number]) => boolean) => {
    await waitFor(async () => (await stack.events()).some((e) => e.event === 'flow.start' && pred(e)));
    return (await stack.events()).filter((e) => e.event === 'flow.start' && pred(e)).at(-1);
  };
  const lastEnd = async (pred: (e: Awaited<ReturnType<Stack['events']>>[number]) => boolean) => {
    await waitFor(async () => (await stack.events()).some((e) => e.event === 'flow.end' && pred(e)));
    return (await stack.events()).filter((e) => e.event === 'flow.end' && pred(e)).at(-1);
  };

  it('curl --proxy (HTTP CONNECT) reaches an allowed HTTPS server', async () => {
    const r = await run('curl', ['-sS', '--proxy', `http://127.0.0.1:${stack.port('connect')}`, '--cacert', certs.caPath, `https://ok.test:${httpsPort}/`]);
    expect(r.out).toContain(`https upstream saw ok.test:${httpsPort}`);
    expect(await lastStart((e) => e.listener === 'connect' && e.connectHost === 'ok.test')).toMatchObject({ verdict: 'allow', ruleId: 'ok', mode: 'http-connect', dst: `127.0.0.1:${httpsPort}` });
  });

  it('CONNECT to a denied name: 403 with a Portcullis-Reason header', async () => {
    const reply = (await raw(stack.port('connect'), [Buffer.from(`CONNECT denied.test:${httpsPort} HTTP/1.1\r\nHost: denied.test\r\n\r\n`)])).toString();
    expect(reply).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(reply).toContain('Portcullis-Reason: default');
    const r = await run('curl', ['-sS', '--proxy', `http://127.0.0.1:${stack.port('connect')}`, '--cacert', certs.caPath, `https://denied.test:${httpsPort}/`]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/403/);
  });

  it('malformed requests get 400 and other methods 405', async () => {
    expect((await raw(stack.port('connect'), [Buffer.from('CONNECT no-port HTTP/1.1\r\n\r\n')])).toString()).toMatch(/^HTTP\/1\.1 400 /);
    expect((await raw(stack.port('connect'), [Buffer.from('GET http://ok.test/ HTTP/1.1\r\nHost: ok.test\r\n\r\n')])).toString()).toMatch(/^HTTP\/1\.1 405 /);
    expect(await lastStart((e) => e.reason === 'method-not-allowed')).toMatchObject({ verdict: 'deny', protocol: 'http' });
  });

  it('openssl s_client -proxy completes a verified handshake through CONNECT', async () => {
    const r = await run('openssl', ['s_client', '-proxy', `127.0.0.1:${stack.port('connect')}`, '-connect', `ok.test:${httpsPort}`, '-servername', 'ok.test', '-CAfile', certs.caPath, '-verify_return_error', '-brief']);
    expect(r.out).toMatch(/Verification: OK|Verify return code: 0/);
  });

  it('a server that speaks first: its banner arrives through CONNECT before the client sends a byte', async () => {
    const s = connect({ port: stack.port('connect'), host: '127.0.0.1' });
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.write(`CONNECT ssh.test:${bannerPort} HTTP/1.1\r\n\r\n`);
    await waitFor(() => got.includes('SSH-2.0-PortcullisTest'), 3_000);
    expect(got).toMatch(/^HTTP\/1\.1 200 Connection Established\r\n\r\nSSH-2\.0-PortcullisTest\r\n$/);
    s.write('SSH-2.0-client\r\n');
    await waitFor(() => got.includes('echo:SSH-2.0-client'), 3_000);
    s.destroy();
    // the banner crossed before the tunnel check passed (JavaScript relay), the echo after it (the
    // native relay, by default): flow.end counts both, and not the edge's own 200 reply
    expect(await lastEnd((e) => e.listener === 'connect' && e.connectHost === 'ssh.test')).toMatchObject({ bytesUp: 'SSH-2.0-client\r\n'.length, bytesDown: 'SSH-2.0-PortcullisTest\r\n'.length + 'echo:SSH-2.0-client\r\n'.length });
  });

  it('a ClientHello through the tunnel must name the CONNECT host (domain fronting refused: sni-mismatch)', async () => {
    const s = connect({ port: stack.port('connect'), host: '127.0.0.1' });
    await new Promise((r) => s.once('connect', r));
    s.write(`CONNECT ok.test:${httpsPort} HTTP/1.1\r\n\r\n`);
    await new Promise((r) => s.once('data', r)); // 200
    const err = await new Promise<string>((resolve) => {
      const t = tlsConnect({ socket: s, servername: 'other.test', ca: certs.ca });
      t.on('secureConnect', () => resolve('connected'));
      t.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    expect(err).toBe('ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    expect(await lastEnd((e) => e.listener === 'connect' && e.sni === 'other.test')).toMatchObject({ connectHost: 'ok.test', closeReason: 'sni-mismatch' });
  });

  it('curl --socks5-hostname reaches an allowed server; a denied name gets reply 0x02', async () => {
    const r = await run('curl', ['-sS', '--socks5-hostname', `127.0.0.1:${stack.port('socks')}`, '--cacert', certs.caPath, `https://ok.test:${httpsPort}/`]);
    expect(r.out).toContain(`https upstream saw ok.test:${httpsPort}`);
    const port = Buffer.alloc(2);
    port.writeUInt16BE(httpsPort);
    const reply = await raw(stack.port('socks'), [Buffer.from([5, 1, 0]), Buffer.concat([Buffer.from([5, 1, 0, 3, 11]), Buffer.from('denied.test'), port])], { pauseMs: 50 });
    expect([...reply.subarray(0, 4)]).toEqual([5, 0, 5, 2]); // method no-auth, then "not allowed by ruleset"
    expect(await lastStart((e) => e.listener === 'socks' && e.connectHost === 'denied.test')).toMatchObject({ verdict: 'deny', mode: 'socks5' });
  });

  it('SOCKS: BIND is answered 0x07, an unknown address type 0x08', async () => {
    expect([...(await raw(stack.port('socks'), [Buffer.from([5, 1, 0]), Buffer.from([5, 2, 0, 1, 127, 0, 0, 1, 0, 80])], { pauseMs: 50 })).subarray(2, 4)]).toEqual([5, 7]);
    expect([...(await raw(stack.port('socks'), [Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0, 9, 0, 0])], { pauseMs: 50 })).subarray(2, 4)]).toEqual([5, 8]);
  });

  it('PROXY v2 from a trusted peer (split across writes, with an AWS TLV): its client address is the source in policy and audit', async () => {
    const hello = await captureHello('partner.test');
    const aws = Buffer.concat([Buffer.from([0xea, 0x00, 0x0f, 0x01]), Buffer.from('vpce-12345678a')]); // type, length 15, subtype 1, endpoint id
    const header = proxyV2(['203.0.113.9', 40000], ['10.0.0.1', 443], { tlv: aws });
    // without the header the same name is denied: the rule only admits 203.0.113.0/24
    await raw(stack.port('pp'), [proxyV2(['198.51.100.7', 1], ['10.0.0.1', 443]), hello]);
    expect(await lastStart((e) => e.listener === 'pp' && e.src === '198.51.100.7:1')).toMatchObject({ verdict: 'deny', sni: 'partner.test' });
    const cut = 7;
    await raw(stack.port('pp'), [header.subarray(0, cut), header.subarray(cut), hello.subarray(0, 10), hello.subarray(10)], { pauseMs: 20, waitMs: 800 });
    expect(await lastStart((e) => e.listener === 'pp' && e.src === '203.0.113.9:40000')).toMatchObject({ verdict: 'allow', ruleId: 'from-partner', sni: 'partner.test' });
  });

  it('PROXY v1 is accepted on an `any` listener; a LOCAL health check keeps the real peer address', async () => {
    const hello = await captureHello('ok.test');
    await raw(stack.port('pp'), [Buffer.from('PROXY TCP4 192.0.2.44 10.0.0.1 5555 443\r\n'), hello], { waitMs: 800 });
    expect(await lastStart((e) => e.listener === 'pp' && e.src === '192.0.2.44:5555')).toMatchObject({ verdict: 'allow', sni: 'ok.test' });
    await raw(stack.port('pp'), [proxyV2(['0.0.0.0', 0], ['0.0.0.0', 0], { local: true })], { waitMs: 2_500 });
    expect(await lastStart((e) => e.listener === 'pp' && e.reason === 'client-silent')).toMatchObject({ src: expect.stringMatching(/^127\.0\.0\.1:/) });
  });

  it('a PROXY header from an untrusted peer is refused, and a trusted one must send it', async () => {
    const hello = await captureHello('ok.test');
    await raw(stack.port('pp-strange'), [proxyV2(['203.0.113.9', 1], ['10.0.0.1', 443]), hello]);
    expect(await lastStart((e) => e.listener === 'pp-strange')).toMatchObject({ verdict: 'deny', reason: 'untrusted-proxy-header' });
    await raw(stack.port('pp'), [hello]);
    expect(await lastStart((e) => e.listener === 'pp' && e.reason === 'proxy-header-missing')).toMatchObject({ verdict: 'deny' });
  });

  it('every flow above has exactly one start and one end', async () => {
    await new Promise((r) => setTimeout(r, 300));
    const byFlow = new Map<string, string[]>();
    for (const e of await stack.events()) byFlow.set(e.flowId, [...(byFlow.get(e.flowId) ?? []), e.event]);
    for (const [id, v] of byFlow) expect(v.sort(), id).toEqual(['flow.end', 'flow.start']);
  });
});

export type { Socket };
