import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { ConnectResult } from './http-connect';
import { ConnectRequestReader, MAX_CONNECT_HEAD_BYTES, readConnectRequest } from './http-connect';
import { buildClientHello } from './testing/build-hello';
import { checkDeliveries, deliverTo } from './testing/streams';

const make = (): ConnectRequestReader => new ConnectRequestReader();
const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function req(head: string, fields: Partial<Extract<ConnectResult, { kind: 'request' }>>): [string, string, ConnectResult] {
  return [head.slice(0, 48), head, { kind: 'request', headBytes: b(head).length, headers: [], version: '1.1', ...fields } as ConnectResult];
}
function bad(head: string, reason: string, problem?: string): [string, string, ConnectResult] {
  return [head.slice(0, 48), head, (problem ? { kind: 'bad-request', reason, problem } : { kind: 'bad-request', reason }) as ConnectResult];
}

const rows: [string, string, ConnectResult][] = [
  req('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n', { host: 'example.test', hostType: 'name', port: 443, headers: [['host', 'example.test:443']] }),
  req('CONNECT Example.TEST.:8443 HTTP/1.1\r\n\r\n', { host: 'example.test', hostType: 'name', port: 8443 }),
  req('CONNECT a.test:80 HTTP/1.0\r\n\r\n', { host: 'a.test', hostType: 'name', port: 80, version: '1.0' }),
  req('CONNECT 1.2.3.4:443 HTTP/1.1\r\n\r\n', { host: '1.2.3.4', hostType: 'ipv4', port: 443 }),
  req('CONNECT [::1]:443 HTTP/1.1\r\n\r\n', { host: '::1', hostType: 'ipv6', port: 443 }),
  req('CONNECT [2001:DB8:0:0:0:0:0:1]:65535 HTTP/1.1\r\n\r\n', { host: '2001:db8::1', hostType: 'ipv6', port: 65535 }),
  req('CONNECT [::ffff:1.2.3.4]:1 HTTP/1.1\r\n\r\n', { host: '::ffff:102:304', hostType: 'ipv6', port: 1 }),
  req('CONNECT x.test:0443 HTTP/1.1\r\n\r\n', { host: 'x.test', hostType: 'name', port: 443 }),
  req('CONNECT x.test:443 HTTP/1.1\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\nX-Empty:\r\nX-Ows: \t padded value \t\r\nUser-Agent: curl/7.88.1\r\n\r\n', {
    host: 'x.test',
    hostType: 'name',
    port: 443,
    headers: [
      ['proxy-authorization', 'Basic dXNlcjpwYXNz'],
      ['x-empty', ''],
      ['x-ows', 'padded value'],
      ['user-agent', 'curl/7.88.1'],
    ],
  }),
  ['GET', 'GET http://x.test/ HTTP/1.1\r\n\r\n', { kind: 'not-connect', method: 'GET' }],
  ['lowercase connect', 'connect x.test:443 HTTP/1.1\r\n\r\n', { kind: 'not-connect', method: 'connect' }],
  ['POST', 'POST / HTTP/1.1\r\n', { kind: 'not-connect', method: 'POST' }],
  bad(' CONNECT x.test:443 HTTP/1.1\r\n\r\n', 'method'),
  bad('\r\nCONNECT x.test:443 HTTP/1.1\r\n\r\n', 'method'),
  bad('CONN\u0000ECT x.test:443 HTTP/1.1\r\n\r\n', 'method'),
  bad('CONNECT\r\n\r\n', 'method'),
  bad(`${'X'.repeat(40)} / HTTP/1.1\r\n\r\n`, 'method'),
  bad('\u0016\u0003\u0001\u0002\u0000', 'method'),
  bad('CONNECT x.test:443 HTTP/1.1\n\n', 'bare-lf'),
  bad('CONNECT x.test:443 HTTP/1.1\r\nHost: x\n\r\n', 'bare-lf'),
  bad('CONNECT x.test:443 HTTP/1.1\rX', 'bare-cr'),
  bad('CONNECT x.test:443\r\n\r\n', 'request-line'),
  bad('CONNECT  x.test:443 HTTP/1.1\r\n\r\n', 'request-line'),
  bad('CONNECT x.test:443 HTTP/1.1 extra\r\n\r\n', 'request-line'),
  bad('CONNECT x.test:443 HTTP/2.0\r\n\r\n', 'version'),
  bad('CONNECT x.test:443 http/1.1\r\n\r\n', 'version'),
  bad('CONNECT x.test HTTP/1.1\r\n\r\n', 'target'),
  bad('CONNECT ::1:443 HTTP/1.1\r\n\r\n', 'target'),
  bad('CONNECT [::1 HTTP/1.1\r\n\r\n', 'target'),
  bad('CONNECT [::1]443 HTTP/1.1\r\n\r\n', 'target'),
  bad('CONNECT x.test:0 HTTP/1.1\r\n\r\n', 'port'),
  bad('CONNECT x.test:65536 HTTP/1.1\r\n\r\n', 'port'),
  bad('CONNECT x.test: HTTP/1.1\r\n\r\n', 'port'),
  bad('CONNECT x.test:+443 HTTP/1.1\r\n\r\n', 'port'),
  bad('CONNECT x.test:443443 HTTP/1.1\r\n\r\n', 'port'),
  bad('CONNECT [::1]:x HTTP/1.1\r\n\r\n', 'port'),
  bad('CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n\r\n', 'host', 'ip-literal'),
  bad('CONNECT [zz::1]:443 HTTP/1.1\r\n\r\n', 'host', 'ip-literal'),
  bad('CONNECT 127.1:443 HTTP/1.1\r\n\r\n', 'host', 'ip-literal'),
  bad('CONNECT user@x.test:443 HTTP/1.1\r\n\r\n', 'host', 'bad-char'),
  bad('CONNECT bücher.de:443 HTTP/1.1\r\n\r\n', 'host', 'unicode'),
  bad('CONNECT :443 HTTP/1.1\r\n\r\n', 'host', 'empty'),
  bad('CONNECT x.test:443 HTTP/1.1\r\nNo colon here\r\n\r\n', 'header'),
  bad('CONNECT x.test:443 HTTP/1.1\r\n: empty name\r\n\r\n', 'header'),
  bad('CONNECT x.test:443 HTTP/1.1\r\nBad Name: x\r\n\r\n', 'header'),
  bad('CONNECT x.test:443 HTTP/1.1\r\nHost : x\r\n\r\n', 'header'),
  bad('CONNECT x.test:443 HTTP/1.1\r\nX: a\u0000b\r\n\r\n', 'header'),
  bad('CONNECT x.test:443 HTTP/1.1\r\nX: a\r\n folded\r\n\r\n', 'obs-fold'),
];

describe('ConnectRequestReader', () => {
  it.each(rows)('%s', (_title, head, expected) => {
    expect(readConnectRequest(b(head))).toEqual(expected);
  });

  it.each(rows)('every delivery of %s gives the same outcome', (_title, head) => {
    const { result } = checkDeliveries(make, b(head));
    expect(result).toEqual(readConnectRequest(b(head)));
  });

  it('decides not-connect on the space after the method', () => {
    expect(deliverTo(make, b('GET /index.html HTTP/1.1\r\n'), Array.from({ length: 30 }, (_, i) => i)).decidedAt).toBe(4);
  });

  it('leaves the tunnel data that follows the head alone', () => {
    const head = b('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n');
    const hello = buildClientHello();
    const r = readConnectRequest(Buffer.concat([head, hello]));
    expect(r).toMatchObject({ kind: 'request', headBytes: head.length, host: 'example.test' });
  });

  it('takes a head of exactly 8 KiB and refuses one byte more', () => {
    const start = 'CONNECT x.test:443 HTTP/1.1\r\nX-Pad: ';
    const fit = start + 'a'.repeat(MAX_CONNECT_HEAD_BYTES - start.length - 4) + '\r\n\r\n';
    expect(fit.length).toBe(MAX_CONNECT_HEAD_BYTES);
    expect(readConnectRequest(b(fit))).toMatchObject({ kind: 'request', headBytes: MAX_CONNECT_HEAD_BYTES });
    const over = start + 'a'.repeat(MAX_CONNECT_HEAD_BYTES - start.length - 3) + '\r\n\r\n';
    expect(readConnectRequest(b(over))).toEqual({ kind: 'too-large' });
    const r = deliverTo(make, b(over), [100, 8000, 8191, 8192]);
    expect(r).toEqual({ result: { kind: 'too-large' }, decidedAt: 8192 });
  });

  it('keeps answering the final outcome', () => {
    const reader = make();
    const r = reader.push(b('CONNECT x.test:443 HTTP/1.1\r\n\r\n'));
    expect(reader.push(b('GET / HTTP/1.1\r\n\r\n'))).toBe(r);
    expect(reader.result).toBe(r);
  });

  it('random bytes: never throws, same outcome in any chunks', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.string({ maxLength: 120 }).map((s) => b(`CONNECT ${s}`))), fc.array(fc.nat({ max: 220 }), { maxLength: 10 }), (bytes, cuts) => {
        const whole = readConnectRequest(bytes);
        expect(deliverTo(make, bytes, cuts).result).toEqual(whole);
      }),
      { numRuns: 2000 },
    );
  });

  it('generated requests are read back exactly, in any chunks, with tunnel data after them', () => {
    const headerArb = fc.tuple(fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/), fc.stringMatching(/^[!-~]([ !-~]{0,30}[!-~])?$/));
    fc.assert(
      fc.property(fc.domain(), fc.integer({ min: 1, max: 65535 }), fc.array(headerArb, { maxLength: 6 }), fc.uint8Array({ maxLength: 40 }), fc.array(fc.nat({ max: 400 }), { maxLength: 6 }), (host, port, headers, tail, cuts) => {
        fc.pre(!/\.[0-9]+$/.test(host));
        const head = `CONNECT ${host}:${port} HTTP/1.1\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
        const wire = Buffer.concat([b(head), tail]);
        const r = deliverTo(make, wire, cuts).result;
        expect(r).toEqual({ kind: 'request', headBytes: head.length, host: host.toLowerCase(), hostType: 'name', port, version: '1.1', headers: headers.map(([n, v]) => [n.toLowerCase(), v]) });
      }),
      { numRuns: 1000 },
    );
  });
});
