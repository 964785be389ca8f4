import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { SocksGreetingResult, SocksRequestResult } from './socks5';
import { SOCKS_REPLY, SocksGreetingReader, SocksRequestReader, readSocksGreeting, readSocksRequest, socksReply } from './socks5';
import { checkDeliveries, deliverTo } from './testing/streams';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ''), 'hex');
const domainReq = (name: string, port = 443, cmd = 1): Buffer => Buffer.concat([Buffer.from([5, cmd, 0, 3, Buffer.byteLength(name, 'latin1')]), Buffer.from(name, 'latin1'), Buffer.from([port >> 8, port & 0xff])]);

const greetings: [string, Buffer, SocksGreetingResult][] = [
  ['no-auth only', hex('050100'), { kind: 'greeting', methods: [0], method: 0, bytes: 3 }],
  ['no-auth and user/pass', hex('05020002'), { kind: 'greeting', methods: [0, 2], method: 0, bytes: 4 }],
  ['user/pass only', hex('050102'), { kind: 'greeting', methods: [2], method: 0xff, bytes: 3 }],
  ['GSSAPI and user/pass', hex('05020102'), { kind: 'greeting', methods: [1, 2], method: 0xff, bytes: 4 }],
  ['255 methods', Buffer.concat([hex('05ff'), Buffer.from(Array.from({ length: 255 }, (_, i) => 254 - i))]), { kind: 'greeting', methods: Array.from({ length: 255 }, (_, i) => 254 - i), method: 0, bytes: 257 }],
  ['zero methods', hex('0500'), { kind: 'invalid', reason: 'methods-count' }],
  ['SOCKS4 CONNECT', hex('040101bb7f00000100'), { kind: 'not-socks5', version: 4 }],
  ['TLS', hex('160301'), { kind: 'not-socks5', version: 0x16 }],
  ['HTTP', Buffer.from('CONNECT x:1 HTTP/1.1'), { kind: 'not-socks5', version: 0x43 }],
];

const requests: [string, Buffer, SocksRequestResult][] = [
  ['domain', domainReq('example.test'), { kind: 'request', command: 'connect', host: 'example.test', hostType: 'name', port: 443, bytes: 19 }],
  ['domain, uppercase and trailing dot', domainReq('Example.TEST.', 8443), { kind: 'request', command: 'connect', host: 'example.test', hostType: 'name', port: 8443, bytes: 20 }],
  ['IPv4', hex('05010001 01020304 01bb'), { kind: 'request', command: 'connect', host: '1.2.3.4', hostType: 'ipv4', port: 443, bytes: 10 }],
  ['IPv6', hex('05010004 20010db8000000000000000000000001 0016'), { kind: 'request', command: 'connect', host: '2001:db8::1', hostType: 'ipv6', port: 22, bytes: 22 }],
  ['IPv6 loopback', hex('05010004 00000000000000000000000000000001 0050'), { kind: 'request', command: 'connect', host: '::1', hostType: 'ipv6', port: 80, bytes: 22 }],
  ['IPv4 sent as a domain', domainReq('10.0.0.1', 25), { kind: 'request', command: 'connect', host: '10.0.0.1', hostType: 'ipv4', port: 25, bytes: 15 }],
  ['IPv6 sent as a domain', domainReq('[::1]', 25), { kind: 'request', command: 'connect', host: '::1', hostType: 'ipv6', port: 25, bytes: 12 }],
  ['255-byte domain is too long a name', domainReq(`${'a'.repeat(63)}.`.repeat(4).slice(0, 255)), { kind: 'invalid', reason: 'host', reply: 1, problem: 'too-long' }],
  ['BIND', domainReq('example.test', 443, 2), { kind: 'unsupported', what: 'command', value: 2, reply: 0x07 }],
  ['UDP ASSOCIATE', hex('05030001000000000000'), { kind: 'unsupported', what: 'command', value: 3, reply: 0x07 }],
  ['unknown command', hex('05090001'), { kind: 'unsupported', what: 'command', value: 9, reply: 0x07 }],
  ['unknown address type', hex('05010002 00'), { kind: 'unsupported', what: 'address-type', value: 2, reply: 0x08 }],
  ['wrong version', hex('04010001 01020304 01bb'), { kind: 'invalid', reason: 'version', reply: 1 }],
  ['reserved byte set', hex('05010101 01020304 01bb'), { kind: 'invalid', reason: 'reserved', reply: 1 }],
  ['zero-length domain', hex('05010003 00 01bb'), { kind: 'invalid', reason: 'domain-length', reply: 1 }],
  ['port 0', hex('05010001 01020304 0000'), { kind: 'invalid', reason: 'port', reply: 1 }],
  ['domain with NUL', domainReq('ok.test\u0000.evil.test'), { kind: 'invalid', reason: 'host', reply: 1, problem: 'bad-char' }],
  ['domain with a space', domainReq('a b.test'), { kind: 'invalid', reason: 'host', reply: 1, problem: 'bad-char' }],
  ['UTF-8 domain', Buffer.concat([hex('0501000309'), Buffer.from('bücher.d', 'utf8'), hex('01bb')]), { kind: 'invalid', reason: 'host', reply: 1, problem: 'unicode' }],
];

describe('SocksGreetingReader', () => {
  it.each(greetings)('%s', (_name, wire, expected) => {
    expect(readSocksGreeting(wire)).toEqual(expected);
    const { result } = checkDeliveries(() => new SocksGreetingReader(), wire);
    expect(result).toEqual(expected);
  });
});

describe('SocksRequestReader', () => {
  it.each(requests)('%s', (_name, wire, expected) => {
    expect(readSocksRequest(wire)).toEqual(expected);
    const { result } = checkDeliveries(() => new SocksRequestReader(), wire);
    expect(result).toEqual(expected);
  });

  it('rejects BIND on the command byte, before the address arrives', () => {
    expect(deliverTo(() => new SocksRequestReader(), domainReq('example.test', 443, 2), [1, 2, 3, 4]).decidedAt).toBe(2);
  });

  it('a client that sends greeting and request in one write: the caller splits at greeting.bytes', () => {
    const wire = Buffer.concat([hex('050100'), domainReq('example.test'), hex('160301')]);
    const g = readSocksGreeting(wire);
    expect(g).toMatchObject({ kind: 'greeting', bytes: 3 });
    const r = readSocksRequest(wire.subarray(g.kind === 'greeting' ? g.bytes : 0));
    expect(r).toMatchObject({ kind: 'request', host: 'example.test', bytes: 19 });
  });

  it('socksReply builds the 10-byte reply', () => {
    expect(socksReply(SOCKS_REPLY.notAllowed)).toEqual(hex('05020001000000000000'));
  });

  it('random bytes: never throws, same outcome in any chunks', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.concat([hex('05'), u]))), fc.array(fc.nat({ max: 300 }), { maxLength: 10 }), (bytes, cuts) => {
        expect(deliverTo(() => new SocksRequestReader(), bytes, cuts).result).toEqual(readSocksRequest(bytes));
        expect(deliverTo(() => new SocksGreetingReader(), bytes, cuts).result).toEqual(readSocksGreeting(bytes));
      }),
      { numRuns: 2000 },
    );
  });

  it('generated requests are read back exactly', () => {
    fc.assert(
      fc.property(fc.domain(), fc.integer({ min: 1, max: 65535 }), fc.uint8Array({ maxLength: 20 }), (host, port, tail) => {
        fc.pre(!/\.[0-9]+$/.test(host));
        const wire = Buffer.concat([domainReq(host, port), tail]);
        expect(readSocksRequest(wire)).toEqual({ kind: 'request', command: 'connect', host: host.toLowerCase(), hostType: 'name', port, bytes: wire.length - tail.length });
      }),
      { numRuns: 1000 },
    );
  });
});
