import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { ProxyResult } from './proxy-protocol';
import { MAX_PROXY_V1_BYTES, PROXY_V2_SIGNATURE, PP2_TYPE, ProxyHeaderReader, readProxyHeader } from './proxy-protocol';
import { buildClientHello } from './testing/build-hello';
import { checkDeliveries, deliverTo } from './testing/streams';

const make = (): ProxyHeaderReader => new ProxyHeaderReader();
const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ''), 'hex');
const u16 = (v: number): Buffer => Buffer.from([v >> 8, v & 0xff]);
const tlv = (type: number, value: Buffer): Buffer => Buffer.concat([Buffer.from([type]), u16(value.length), value]);
function v2(verCmd: number, family: number, block: Buffer): Buffer {
  return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([verCmd, family]), u16(block.length), block]);
}
const tcp4Block = hex('c0a80001 c0a8000b dc04 01bb'); // 192.168.0.1:56324 → 192.168.0.11:443
const tcp6Block = hex('20010db8000000000000000000000001 00000000000000000000000000000001 3039 0016');

const header = (bytes: number, rest: object): ProxyResult => ({ kind: 'header', bytes, tlvs: [], local: false, ...rest }) as unknown as ProxyResult;
const inv = (reason: string): ProxyResult => ({ kind: 'invalid', reason }) as ProxyResult;
const v1max = 'PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n';

const rows: [string, Buffer, ProxyResult][] = [
  ['v1 TCP4', b('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'), header(47, { version: 1, family: 'tcp4', src: { address: '192.168.0.1', port: 56324 }, dst: { address: '192.168.0.11', port: 443 } })],
  ['v1 TCP6', b('PROXY TCP6 2001:DB8::1 ::1 1 65535\r\n'), header(36, { version: 1, family: 'tcp6', src: { address: '2001:db8::1', port: 1 }, dst: { address: '::1', port: 65535 } })],
  ['v1 longest TCP6 line', b(v1max), header(v1max.length, { version: 1, family: 'tcp6', src: { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 }, dst: { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 } })],
  ['v1 UNKNOWN', b('PROXY UNKNOWN\r\n'), header(15, { version: 1, family: 'unknown' })],
  ['v1 UNKNOWN with addresses', b('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n'), header(35, { version: 1, family: 'unknown' })],
  ['v1 port 0', b('PROXY TCP4 1.2.3.4 5.6.7.8 0 0\r\n'), header(32, { version: 1, family: 'tcp4', src: { address: '1.2.3.4', port: 0 }, dst: { address: '5.6.7.8', port: 0 } })],
  ['v1 too long', b(`PROXY UNKNOWN ${'x'.repeat(120)}\r\n`), inv('v1-too-long')],
  ['v1 bare LF', b('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'), inv('v1-line')],
  ['v1 bare CR', b('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX'), inv('v1-line')],
  ['v1 missing field', b('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'), inv('v1-line')],
  ['v1 double space', b('PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), inv('v1-line')],
  ['v1 UDP4', b('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), inv('v1-protocol')],
  ['v1 lowercase tcp4', b('PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n'), inv('v1-protocol')],
  ['v1 TCP4 with IPv6', b('PROXY TCP4 ::1 5.6.7.8 1 2\r\n'), inv('v1-address')],
  ['v1 TCP4 short address', b('PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n'), inv('v1-address')],
  ['v1 TCP4 leading zero', b('PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n'), inv('v1-address')],
  ['v1 TCP6 with IPv4', b('PROXY TCP6 1.2.3.4 ::1 1 2\r\n'), inv('v1-address')],
  ['v1 port 65536', b('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), inv('v1-port')],
  ['v1 port with leading zero', b('PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'), inv('v1-port')],
  ['v2 PROXY TCP4', v2(0x21, 0x11, tcp4Block), header(28, { version: 2, family: 'tcp4', src: { address: '192.168.0.1', port: 56324 }, dst: { address: '192.168.0.11', port: 443 } })],
  ['v2 PROXY TCP6', v2(0x21, 0x21, tcp6Block), header(52, { version: 2, family: 'tcp6', src: { address: '2001:db8::1', port: 12345 }, dst: { address: '::1', port: 22 } })],
  ['v2 PROXY UDP4', v2(0x21, 0x12, tcp4Block), header(28, { version: 2, family: 'udp4', src: { address: '192.168.0.1', port: 56324 }, dst: { address: '192.168.0.11', port: 443 } })],
  [
    'v2 TCP4 with AWS, authority and NOOP TLVs',
    v2(0x21, 0x11, Buffer.concat([tcp4Block, tlv(PP2_TYPE.aws, Buffer.concat([Buffer.from([0x01]), b('vpce-08d2bf15fac5001c9')])), tlv(PP2_TYPE.authority, b('example.test')), tlv(PP2_TYPE.noop, Buffer.alloc(3))])),
    header(28 + 26 + 15 + 6, {
      version: 2,
      family: 'tcp4',
      src: { address: '192.168.0.1', port: 56324 },
      dst: { address: '192.168.0.11', port: 443 },
      tlvs: [
        { type: 0xea, length: 23 },
        { type: 0x02, length: 12 },
        { type: 0x04, length: 3 },
      ],
      awsVpceId: 'vpce-08d2bf15fac5001c9',
      authority: 'example.test',
    }),
  ],
  ['v2 TLV of 0 bytes', v2(0x21, 0x11, Buffer.concat([tcp4Block, tlv(0xe0, Buffer.alloc(0))])), header(31, { version: 2, family: 'tcp4', src: { address: '192.168.0.1', port: 56324 }, dst: { address: '192.168.0.11', port: 443 }, tlvs: [{ type: 0xe0, length: 0 }] })],
  ['v2 LOCAL', v2(0x20, 0x00, Buffer.alloc(0)), header(16, { version: 2, local: true, family: 'unspec' })],
  ['v2 LOCAL with a block that is ignored', v2(0x20, 0x11, hex('ffff')), header(18, { version: 2, local: true, family: 'tcp4' })],
  ['v2 PROXY UNSPEC', v2(0x21, 0x00, hex('0102030405')), header(21, { version: 2, family: 'unspec' })],
  ['v2 PROXY unix stream', v2(0x21, 0x31, Buffer.alloc(216)), header(232, { version: 2, family: 'unix-stream' })],
  ['v2 version 1', v2(0x11, 0x11, tcp4Block), inv('v2-version')],
  ['v2 command 2', v2(0x22, 0x11, tcp4Block), inv('v2-command')],
  ['v2 address family 4', v2(0x21, 0x41, tcp4Block), inv('v2-family')],
  ['v2 transport 3', v2(0x21, 0x13, tcp4Block), inv('v2-family')],
  ['v2 TCP4 block too short', v2(0x21, 0x11, tcp4Block.subarray(0, 8)), inv('v2-length')],
  ['v2 TCP6 block too short', v2(0x21, 0x21, tcp4Block), inv('v2-length')],
  ['v2 TLV past the end', v2(0x21, 0x11, Buffer.concat([tcp4Block, hex('02 0010 6162')])), inv('v2-tlv-length')],
  ['v2 TLV header cut', v2(0x21, 0x11, Buffer.concat([tcp4Block, hex('0200')])), inv('v2-tlv-length')],
  ['TLS', buildClientHello(), { kind: 'not-proxy' }],
  ['HTTP', b('GET / HTTP/1.1\r\n'), { kind: 'not-proxy' }],
  ['PROXX', b('PROXX TCP4'), { kind: 'not-proxy' }],
  ['PROXY without the space', b('PROXYTCP4'), { kind: 'not-proxy' }],
  ['v2 signature with one wrong byte', Buffer.concat([PROXY_V2_SIGNATURE.subarray(0, 11), hex('0b21')]), { kind: 'not-proxy' }],
  ['a CRLF CRLF that is not the v2 signature', b('\r\n\r\nGET'), { kind: 'not-proxy' }],
];

describe('ProxyHeaderReader', () => {
  it.each(rows)('%s', (_name, wire, expected) => {
    expect(readProxyHeader(wire)).toEqual(expected);
    if (expected.kind === 'header') expect(expected.bytes).toBe(wire.length);
  });

  it.each(rows)('every delivery of %s gives the same outcome', (_name, wire) => {
    const { result } = checkDeliveries(make, wire);
    expect(result).toEqual(readProxyHeader(wire));
  });

  it('stops at the header: the client data that follows is not read', () => {
    const hello = buildClientHello();
    const line = b('PROXY TCP4 1.2.3.4 5.6.7.8 1111 443\r\n');
    expect(readProxyHeader(Buffer.concat([line, hello]))).toMatchObject({ kind: 'header', bytes: line.length });
    const bin = v2(0x21, 0x11, tcp4Block);
    expect(readProxyHeader(Buffer.concat([bin, hello]))).toMatchObject({ kind: 'header', bytes: bin.length });
  });

  it('decides not-proxy on the first byte that fits neither signature', () => {
    expect(deliverTo(make, b('PRI * HTTP/2.0'), Array.from({ length: 14 }, (_, i) => i)).decidedAt).toBe(3);
    expect(deliverTo(make, hex('16030100'), [1, 2, 3]).decidedAt).toBe(1);
  });

  it('refuses a v1 line longer than 107 bytes at byte 107', () => {
    const long = b(`PROXY UNKNOWN ${'x'.repeat(200)}`);
    expect(deliverTo(make, long, Array.from({ length: long.length }, (_, i) => i))).toEqual({ result: { kind: 'invalid', reason: 'v1-too-long' }, decidedAt: MAX_PROXY_V1_BYTES });
  });

  it('reads a v2 header with the largest TLV block', () => {
    const big = v2(0x21, 0x11, Buffer.concat([tcp4Block, tlv(0xe1, Buffer.alloc(0xffff - 12 - 3))]));
    const r = deliverTo(make, big, [7, 15, 16, 17, 30000]);
    expect(r.result).toMatchObject({ kind: 'header', bytes: 16 + 0xffff, tlvs: [{ type: 0xe1, length: 0xffff - 15 }] });
  });

  it('random bytes: never throws, same outcome in any chunks', () => {
    const prefixed = fc.tuple(fc.constantFrom(b('PROXY '), b('PROXY TCP4 '), Buffer.from(PROXY_V2_SIGNATURE), Buffer.concat([PROXY_V2_SIGNATURE, hex('21')])), fc.uint8Array({ maxLength: 140 })).map(([p, r]) => Buffer.concat([p, r]));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 140 }), prefixed), fc.array(fc.nat({ max: 160 }), { maxLength: 10 }), (bytes, cuts) => {
        expect(deliverTo(make, bytes, cuts).result).toEqual(readProxyHeader(bytes));
      }),
      { numRuns: 3000 },
    );
  });

  it('generated v1 and v2 headers are read back exactly', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), fc.uint8Array({ maxLength: 30 }), (src, dst, sp, dp, tail) => {
        const line = b(`PROXY TCP4 ${src} ${dst} ${sp} ${dp}\r\n`);
        const want = { kind: 'header', version: 1, local: false, family: 'tcp4', src: { address: src, port: sp }, dst: { address: dst, port: dp }, tlvs: [] };
        expect(readProxyHeader(Buffer.concat([line, tail]))).toEqual({ ...want, bytes: line.length });
        const block = Buffer.concat([Buffer.from(src.split('.').map(Number)), Buffer.from(dst.split('.').map(Number)), u16(sp), u16(dp)]);
        const bin = v2(0x21, 0x11, block);
        expect(readProxyHeader(Buffer.concat([bin, tail]))).toEqual({ ...want, version: 2, bytes: bin.length });
      }),
      { numRuns: 1000 },
    );
  });
});
