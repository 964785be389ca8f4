// A catalogue of built ClientHellos with the outcome each must produce: the edge cases real clients rarely send.
import type { ClientHelloInfo, HelloResult } from '../client-hello';
import { MAX_CLIENT_HELLO_BYTES } from '../client-hello';
import type { HelloExtension } from './build-hello';
import { buildClientHello, buildHandshake, buildHelloBody, concatBytes, defaultExtensions, frameRecords, helloExtensions as ext, padHandshakeTo, u16, u24, u8, vec } from './build-hello';

export interface BuiltHello {
  name: string;
  wire: Buffer;
  /** fields the parsed hello must have (deep-equal each one) */
  expect: Partial<ClientHelloInfo>;
}

export interface BrokenHello {
  name: string;
  wire: Buffer;
  expect: HelloResult;
}

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const withSni = (names: Parameters<typeof ext.serverName>[0], rest: HelloExtension[] = []): HelloExtension[] => [ext.serverName(names), ...defaultExtensions().slice(1), ...rest];
const noSniDefaults = (): HelloExtension[] => defaultExtensions().slice(1);
const hello = (extensions: HelloExtension[] | null): Buffer => buildClientHello({ extensions });

/** Handshake bytes of a hello whose wire form (one record per 16 KiB) is exactly `wireBytes` long. */
function handshakeForWire(wireBytes: number): Buffer {
  const records = Math.ceil(wireBytes / (16384 + 5));
  const message = wireBytes - 5 * records;
  // Several padding-like extensions, since one extension holds at most 65535 bytes.
  const base = buildHandshake({ extensions: defaultExtensions() }).length;
  let left = message - base;
  const fillers: HelloExtension[] = [];
  let type = 0xff00;
  // Each filler costs 4 header bytes plus its data; never leave 1..3 bytes for a last filler.
  while (left > 0) {
    const take = left <= 60000 ? left : left - 60000 < 4 ? 59000 : 60000;
    fillers.push(ext.raw(type++, new Uint8Array(take - 4)));
    left -= take;
  }
  return buildHandshake({ extensions: [...defaultExtensions(), ...fillers] });
}

export const GREASE_EVERYWHERE: HelloExtension[] = [
  ext.raw(0x1a1a),
  ext.serverName(['grease.example']),
  ext.supportedGroups([0x3a3a, 0x11ec, 0x001d]),
  ext.supportedVersions([0x4a4a, 0x0304, 0x0303]),
  ext.alpn([Uint8Array.of(0x5a, 0x5a), 'h2']),
  ext.keyShare([
    { group: 0x3a3a, length: 1 },
    { group: 0x001d, length: 32 },
  ]),
  ext.raw(0xfafa, Uint8Array.of(0)),
];

export const builtHellos: BuiltHello[] = [
  { name: 'no-sni', wire: hello(noSniDefaults()), expect: { sni: { kind: 'none' }, alpn: ['h2', 'http/1.1'] } },
  { name: 'no-extensions (TLS 1.0-1.2 style)', wire: hello(null), expect: { sni: { kind: 'none' }, extensions: [], supportedVersions: [] } },
  { name: 'empty extensions block', wire: hello([]), expect: { sni: { kind: 'none' }, extensions: [] } },
  { name: 'empty SNI list', wire: hello([ext.raw(0, u16(0)), ...noSniDefaults()]), expect: { sni: { kind: 'empty' } } },
  { name: 'zero-length name', wire: hello(withSni([''])), expect: { sni: { kind: 'empty' } } },
  { name: 'IPv4 literal SNI', wire: hello(withSni(['1.2.3.4'])), expect: { sni: { kind: 'ip-literal', raw: '1.2.3.4' } } },
  { name: 'IPv6 literal SNI', wire: hello(withSni(['::1'])), expect: { sni: { kind: 'ip-literal', raw: '::1' } } },
  { name: 'name_type 1 only', wire: hello(withSni([{ type: 1, name: 'example.test' }])), expect: { sni: { kind: 'empty' } } },
  { name: 'name_type 1 then host_name', wire: hello(withSni([{ type: 7, name: 'other' }, 'example.test'])), expect: { sni: { kind: 'name', name: 'example.test' } } },
  { name: 'two host names', wire: hello(withSni(['a.example', 'b.example'])), expect: { sni: { kind: 'multiple', names: ['a.example', 'b.example'] } } },
  { name: 'same host name twice', wire: hello(withSni(['a.example', 'a.example'])), expect: { sni: { kind: 'multiple', names: ['a.example', 'a.example'] } } },
  { name: 'uppercase SNI', wire: hello(withSni(['EXAMPLE.Test'])), expect: { sni: { kind: 'name', name: 'example.test' } } },
  { name: 'trailing-dot SNI', wire: hello(withSni(['example.test.'])), expect: { sni: { kind: 'name', name: 'example.test' } } },
  { name: 'SNI with a space', wire: hello(withSni(['exa mple.test'])), expect: { sni: { kind: 'invalid', raw: 'exa mple.test', problem: 'bad-char' } } },
  { name: 'SNI with NUL', wire: hello(withSni(['allowed.test\u0000.evil.test'])), expect: { sni: { kind: 'invalid', raw: 'allowed.test\u0000.evil.test', problem: 'bad-char' } } },
  { name: 'UTF-8 SNI', wire: hello(withSni([{ name: Buffer.from('bücher.de', 'utf8') }])), expect: { sni: { kind: 'invalid', raw: 'bÃ¼cher.de', problem: 'unicode' } } },
  { name: 'SNI x.com..', wire: hello(withSni(['x.com..'])), expect: { sni: { kind: 'invalid', raw: 'x.com..', problem: 'empty-label' } } },
  {
    name: 'ECH outer with public name',
    wire: hello(withSni(['public.example'], [ext.echOuter({ configId: 7, payloadLength: 200 })])),
    expect: { sni: { kind: 'name', name: 'public.example' }, ech: { present: true, type: 'outer', configId: 7, payloadLength: 200 } },
  },
  {
    name: 'ECH outer without SNI',
    wire: hello([...noSniDefaults(), ext.echOuter({ configId: 255, encLength: 0, payloadLength: 1 })]),
    expect: { sni: { kind: 'none' }, ech: { present: true, type: 'outer', configId: 255, payloadLength: 1 } },
  },
  { name: 'ECH inner', wire: hello(withSni(['secret.example'], [ext.echInner()])), expect: { sni: { kind: 'name', name: 'secret.example' }, ech: { present: true, type: 'inner' } } },
  { name: 'ECH unknown type', wire: hello(withSni(['example.test'], [ext.raw(0xfe0d, Uint8Array.of(9, 1, 2))])), expect: { ech: { present: true } } },
  {
    name: 'GREASE everywhere',
    wire: buildClientHello({ cipherSuites: [0x0a0a, 0x1301, 0xdada, 0x1302], extensions: GREASE_EVERYWHERE }),
    expect: {
      sni: { kind: 'name', name: 'grease.example' },
      grease: true,
      cipherSuites: [0x1301, 0x1302],
      extensions: [0x0000, 0x000a, 0x002b, 0x0010, 0x0033],
      supportedGroups: [0x11ec, 0x001d],
      supportedVersions: [0x0304, 0x0303],
      alpn: ['h2'],
    },
  },
  { name: 'GREASE cipher only', wire: buildClientHello({ cipherSuites: [0x2a2a, 0x1301] }), expect: { grease: true, cipherSuites: [0x1301] } },
  { name: 'padded to ~3 KB', wire: frameRecords(padHandshakeTo({}, 3000)), expect: { sni: { kind: 'name', name: 'example.test' } } },
  { name: '~40 KB in 3 records', wire: frameRecords(handshakeForWire(40_000)), expect: { sni: { kind: 'name', name: 'example.test' } } },
  { name: 'largest allowed: 64 KiB on the wire', wire: frameRecords(handshakeForWire(MAX_CLIENT_HELLO_BYTES)), expect: { sni: { kind: 'name', name: 'example.test' } } },
  { name: 'SSL 3.0 legacy version', wire: buildClientHello({ legacyVersion: 0x0300 }, { recordVersion: 0x0300 }), expect: { legacyVersion: 0x0300 } },
  { name: 'session id empty', wire: buildClientHello({ sessionId: new Uint8Array(0) }), expect: { sni: { kind: 'name', name: 'example.test' } } },
];

// Builders for broken hellos: a body with hand-made parts, framed normally.
const fixed = (sessionId = vec(1, new Uint8Array(0))): Buffer => concatBytes([u16(0x0303), new Uint8Array(32), sessionId]);
const suites = vec(2, concatBytes([u16(0x1301)]));
const compression = vec(1, Uint8Array.of(0));
const framedBody = (body: Uint8Array, type = 1): Buffer => frameRecords(concatBytes([u8(type), u24(body.length), body]));
const withExtBlock = (block: Uint8Array): Buffer => framedBody(concatBytes([fixed(), suites, compression, block]));
const withExts = (exts: { type: number; data: Uint8Array }[]): Buffer => withExtBlock(vec(2, concatBytes(exts.map((e) => concatBytes([u16(e.type), vec(2, e.data)])))));
const inv = (reason: Extract<HelloResult, { kind: 'invalid' }>['reason']): HelloResult => ({ kind: 'invalid', reason });
const good = buildHandshake();

export const brokenHellos: BrokenHello[] = [
  { name: 'SSLv2-style hello', wire: Buffer.from('802b0100020012000000100000', 'hex'), expect: { kind: 'not-tls' } },
  { name: 'HTTP request', wire: bytes('GET / HTTP/1.1\r\nHost: example.test\r\n\r\n'), expect: { kind: 'not-tls' } },
  { name: 'SSH banner', wire: bytes('SSH-2.0-OpenSSH_9.2\r\n'), expect: { kind: 'not-tls' } },
  { name: 'alert record first', wire: Buffer.from('15030300020228', 'hex'), expect: { kind: 'not-tls' } },
  { name: 'application data first', wire: frameRecords(good, { contentType: 0x17 }), expect: { kind: 'not-tls' } },
  { name: 'record major version 2', wire: frameRecords(good, { recordVersion: 0x0203 }), expect: inv('record-version') },
  { name: 'record version 3.5', wire: frameRecords(good, { recordVersion: 0x0305 }), expect: inv('record-version') },
  { name: 'zero-length record', wire: Buffer.from('1603010000', 'hex'), expect: inv('record-length') },
  { name: 'record over 16 KiB', wire: concatBytes([Buffer.from('1603014001', 'hex'), new Uint8Array(16385)]), expect: inv('record-length') },
  { name: 'CCS record inside the hello', wire: concatBytes([frameRecords(good.subarray(0, 10)), Buffer.from('140303000101', 'hex'), frameRecords(good.subarray(10))]), expect: inv('record-type') },
  { name: 'later record of version 4.1', wire: concatBytes([frameRecords(good.subarray(0, 10)), frameRecords(good.subarray(10), { recordVersion: 0x0401 })]), expect: inv('record-version') },
  { name: 'ServerHello', wire: framedBody(buildHelloBody(), 2), expect: inv('handshake-type') },
  { name: 'zero-length handshake', wire: Buffer.from('160301000401000000', 'hex'), expect: inv('hello-length') },
  { name: 'body too short', wire: framedBody(new Uint8Array(34).fill(3)), expect: inv('hello-length') },
  { name: 'legacy version 2.0', wire: buildClientHello({ legacyVersion: 0x0200 }), expect: inv('hello-version') },
  { name: 'session id 33 bytes', wire: buildClientHello({ sessionId: new Uint8Array(33) }), expect: inv('session-id-length') },
  { name: 'session id past the end', wire: framedBody(concatBytes([u16(0x0303), new Uint8Array(32), u8(20), new Uint8Array(5)])), expect: inv('session-id-length') },
  { name: 'no cipher suites field', wire: framedBody(fixed()), expect: inv('cipher-suites-length') },
  { name: 'zero cipher suites', wire: framedBody(concatBytes([fixed(), u16(0), compression])), expect: inv('cipher-suites-length') },
  { name: 'odd cipher suites length', wire: framedBody(concatBytes([fixed(), u16(3), Uint8Array.of(0x13, 0x01, 0x13), compression])), expect: inv('cipher-suites-length') },
  { name: 'cipher suites past the end', wire: framedBody(concatBytes([fixed(), u16(40), u16(0x1301)])), expect: inv('cipher-suites-length') },
  { name: 'no compression field', wire: framedBody(concatBytes([fixed(), suites])), expect: inv('compression-length') },
  { name: 'zero compression methods', wire: framedBody(concatBytes([fixed(), suites, u8(0)])), expect: inv('compression-length') },
  { name: 'one byte of extensions length', wire: framedBody(concatBytes([fixed(), suites, compression, u8(0)])), expect: inv('extensions-length') },
  { name: 'extensions length too long', wire: framedBody(concatBytes([fixed(), suites, compression, u16(10), new Uint8Array(8)])), expect: inv('extensions-length') },
  { name: 'extensions length too short', wire: framedBody(concatBytes([fixed(), suites, compression, u16(4), new Uint8Array(8)])), expect: inv('extensions-length') },
  { name: 'extension header cut', wire: withExtBlock(vec(2, Uint8Array.of(0, 0x17, 0))), expect: inv('extension-length') },
  { name: 'extension data past the block', wire: withExtBlock(vec(2, Uint8Array.of(0, 0x17, 0, 9, 1, 2))), expect: inv('extension-length') },
  { name: 'duplicate extension', wire: withExts([ext.raw(0x17), ext.raw(0x17)]), expect: inv('duplicate-extension') },
  { name: 'duplicate server_name', wire: withExts([ext.serverName(['a.test']), ext.serverName(['b.test'])]), expect: inv('duplicate-extension') },
  { name: 'duplicate GREASE extension', wire: withExts([ext.raw(0x0a0a), ext.raw(0x0a0a)]), expect: inv('duplicate-extension') },
  { name: 'server_name of 0 bytes', wire: withExts([ext.raw(0)]), expect: inv('sni-length') },
  { name: 'server_name of 1 byte', wire: withExts([ext.raw(0, u8(0))]), expect: inv('sni-length') },
  { name: 'SNI list length too long', wire: withExts([ext.raw(0, concatBytes([u16(20), u8(0), vec(2, bytes('a.test'))]))]), expect: inv('sni-length') },
  { name: 'SNI list length too short', wire: withExts([ext.raw(0, concatBytes([u16(3), u8(0), vec(2, bytes('a.test'))]))]), expect: inv('sni-length') },
  { name: 'SNI name past the list', wire: withExts([ext.raw(0, vec(2, concatBytes([u8(0), u16(30), bytes('a.test')])))]), expect: inv('sni-length') },
  { name: 'SNI entry header cut', wire: withExts([ext.raw(0, vec(2, concatBytes([u8(0), vec(2, bytes('a.test')), u8(0), u8(0)])))]), expect: inv('sni-length') },
  { name: 'ALPN empty list', wire: withExts([ext.raw(0x10, u16(0))]), expect: inv('alpn-length') },
  { name: 'ALPN zero-length name', wire: withExts([ext.raw(0x10, vec(2, Uint8Array.of(0, 2, 0x68, 0x32)))]), expect: inv('alpn-length') },
  { name: 'ALPN name past the list', wire: withExts([ext.raw(0x10, vec(2, Uint8Array.of(5, 0x68, 0x32)))]), expect: inv('alpn-length') },
  { name: 'ALPN list length mismatch', wire: withExts([ext.raw(0x10, concatBytes([u16(2), Uint8Array.of(2, 0x68, 0x32)]))]), expect: inv('alpn-length') },
  { name: 'supported_versions odd', wire: withExts([ext.raw(0x2b, Uint8Array.of(3, 3, 4, 3))]), expect: inv('supported-versions-length') },
  { name: 'supported_versions empty', wire: withExts([ext.raw(0x2b, Uint8Array.of(0))]), expect: inv('supported-versions-length') },
  { name: 'supported_versions mismatch', wire: withExts([ext.raw(0x2b, Uint8Array.of(4, 3, 4))]), expect: inv('supported-versions-length') },
  { name: 'supported_groups odd', wire: withExts([ext.raw(0x0a, Uint8Array.of(0, 3, 0, 0x1d, 0))]), expect: inv('supported-groups-length') },
  { name: 'supported_groups of 1 byte', wire: withExts([ext.raw(0x0a, u8(0))]), expect: inv('supported-groups-length') },
  { name: 'ECH empty', wire: withExts([ext.raw(0xfe0d)]), expect: inv('ech-length') },
  { name: 'ECH outer cut', wire: withExts([ext.raw(0xfe0d, Uint8Array.of(0, 0, 1, 0, 1, 7))]), expect: inv('ech-length') },
  { name: 'ECH outer empty payload', wire: withExts([ext.echOuter({ configId: 1, payloadLength: 0 })]), expect: inv('ech-length') },
  { name: 'ECH outer enc past the end', wire: withExts([ext.raw(0xfe0d, concatBytes([Uint8Array.of(0, 0, 1, 0, 1, 7), u16(50), new Uint8Array(10)]))]), expect: inv('ech-length') },
  { name: 'ECH outer trailing byte', wire: withExts([ext.raw(0xfe0d, concatBytes([ext.echOuter({ configId: 1, payloadLength: 4 }).data, u8(0)]))]), expect: inv('ech-length') },
  { name: 'ECH inner with data', wire: withExts([ext.raw(0xfe0d, Uint8Array.of(1, 0))]), expect: inv('ech-length') },
  { name: 'hello then another byte in its record', wire: frameRecords(concatBytes([good, u8(0x0b)])), expect: inv('hello-trailing-data') },
  { name: 'hello then a second handshake message', wire: frameRecords(concatBytes([good, good])), expect: inv('hello-trailing-data') },
  { name: 'declared over 64 KiB', wire: frameRecords(handshakeForWire(70_000)), expect: { kind: 'too-large' } },
  { name: 'one byte over the cap', wire: frameRecords(handshakeForWire(MAX_CLIENT_HELLO_BYTES + 1)), expect: { kind: 'too-large' } },
  { name: '16 MiB handshake length', wire: Buffer.from('1603010004' + '01ffffff', 'hex'), expect: { kind: 'too-large' } },
  { name: 'small hello in 1-byte records past the cap', wire: frameRecords(padHandshakeTo({}, 11_000), { recordSizes: [1] }), expect: { kind: 'too-large' } },
];
