import { describe, expect, it } from 'vitest';
import type { ClientHelloInfo, HelloResult } from './client-hello';
import { ClientHelloReader, MAX_CLIENT_HELLO_BYTES, isGrease, parseClientHelloBody, readClientHello } from './client-hello';
import { capturedHellos } from './fixtures/hellos';
import { TRAILING_RECORDS, buildClientHello, concatBytes, unframeRecords } from './testing/build-hello';
import { brokenHellos, builtHellos } from './testing/built-hellos';
import { comparable, deliver, deliverBytewise, deliverWhole, reframe } from './testing/deliver';
import { referenceParse } from './testing/reference';

const captured = Object.entries(capturedHellos).map(([name, hex]) => ({ name, wire: Buffer.from(hex, 'hex') }));
const valid = [...captured.map((c) => ({ ...c, name: `captured ${c.name}` })), ...builtHellos.map((b) => ({ name: `built ${b.name}`, wire: b.wire }))];

function helloOf(r: HelloResult): ClientHelloInfo {
  if (r.kind !== 'hello') throw new Error(`expected a hello, got ${JSON.stringify(r)}`);
  return r.hello;
}

/** Every offset for small inputs; a stride plus the record and handshake boundaries for large ones. */
function splitOffsets(wire: Buffer): number[] {
  if (wire.length <= 4096) return Array.from({ length: wire.length - 1 }, (_, i) => i + 1);
  const stride = Math.ceil(wire.length / 1500);
  const out = new Set<number>();
  for (let i = 1; i < wire.length; i += stride) out.add(i);
  for (let i = 1; i < 64; i++) out.add(i).add(wire.length - i);
  let off = 0;
  while (off + 5 <= wire.length) {
    for (let d = -1; d <= 6; d++) if (off + d > 0 && off + d < wire.length) out.add(off + d);
    off += 5 + wire.readUInt16BE(off + 3);
  }
  return [...out].sort((a, b) => a - b);
}

describe('captured ClientHellos', () => {
  const expectations: Record<string, Partial<ClientHelloInfo> & { records: number }> = {
    'node-tls': { records: 1, alpn: ['h2', 'http/1.1'], supportedVersions: [0x0304, 0x0303], grease: false },
    'node-tls12': { records: 1, alpn: [], supportedVersions: [] },
    'node-frag512': { records: 2 },
    'node-alpn-62k': { records: 4 },
    'openssl-tls12': { records: 1, supportedVersions: [] },
    'openssl-tls13': { records: 1, alpn: ['h2', 'http/1.1'], supportedVersions: [0x0304] },
    'openssl-frag512': { records: 3 },
    curl: { records: 1, alpn: ['h2', 'http/1.1'] },
    'curl-port': { records: 1, alpn: ['http/1.1'] },
    chromium: { records: 1, alpn: ['h2', 'http/1.1'], grease: true, supportedVersions: [0x0304, 0x0303] },
  };

  it('has every client the issue asks for', () => {
    expect(Object.keys(capturedHellos).sort()).toEqual(Object.keys(expectations).sort());
  });

  it.each(captured)('$name: SNI example.test, helloBytes = all of it', ({ name, wire }) => {
    const r = readClientHello(wire);
    expect(r.kind).toBe('hello');
    if (r.kind !== 'hello') return;
    expect(r.hello.sni).toEqual({ kind: 'name', name: 'example.test' });
    expect(r.helloBytes).toBe(wire.length);
    const { records, ...fields } = expectations[name] ?? { records: -1 };
    expect(r.records).toBe(records);
    expect(r.hello).toMatchObject(fields);
    expect(r.hello.legacyVersion).toBe(0x0303);
    expect(r.hello.extensions[0] === 0 || r.hello.extensions.includes(0)).toBe(true);
    expect(r.hello.cipherSuites.some(isGrease)).toBe(false);
  });

  it('chromium: a ~2 KB hello with an X25519MLKEM768 key share, GREASE and a GREASE ECH outer extension', () => {
    const wire = Buffer.from(capturedHellos['chromium'] ?? '', 'hex');
    expect(wire.length).toBeGreaterThan(1800);
    expect(wire.length).toBeLessThan(2100);
    const h = helloOf(readClientHello(wire));
    expect(h.supportedGroups).toContain(0x11ec);
    expect(h.grease).toBe(true);
    expect(h.ech).toMatchObject({ present: true, type: 'outer' });
    expect(h.extensions).toContain(0xfe0d);
  });

  it('node with 300 ALPN names: ~62 KB in 4 records, under the cap', () => {
    const wire = Buffer.from(capturedHellos['node-alpn-62k'] ?? '', 'hex');
    const h = helloOf(readClientHello(wire));
    expect(h.alpn).toHaveLength(300);
    expect(wire.length).toBeLessThan(MAX_CLIENT_HELLO_BYTES);
  });
});

describe('built ClientHellos', () => {
  it.each(builtHellos)('$name', ({ wire, expect: fields }) => {
    const r = readClientHello(wire);
    expect(r.kind).toBe('hello');
    expect(helloOf(r)).toMatchObject(fields);
    for (const [k, v] of Object.entries(fields)) expect(helloOf(r)[k as keyof ClientHelloInfo]).toEqual(v);
    expect(r.kind === 'hello' && r.helloBytes).toBe(wire.length);
  });

  it('the largest allowed hello is exactly 64 KiB on the wire, and one byte more is too large', () => {
    const max = builtHellos.find((b) => b.name.startsWith('largest'));
    const over = brokenHellos.find((b) => b.name === 'one byte over the cap');
    expect(max?.wire.length).toBe(MAX_CLIENT_HELLO_BYTES);
    expect(over?.wire.length).toBe(MAX_CLIENT_HELLO_BYTES + 1);
  });
});

describe('broken input', () => {
  it.each(brokenHellos)('$name → $expect.kind $expect.reason', ({ wire, expect: expected }) => {
    expect(readClientHello(wire)).toEqual(expected);
    expect(deliverBytewise(wire).result).toEqual(expected);
  });

  it('covers every invalid reason code', () => {
    const reasons = new Set(brokenHellos.flatMap((b) => (b.expect.kind === 'invalid' ? [b.expect.reason] : [])));
    const all = ['record-version', 'record-length', 'record-type', 'handshake-type', 'hello-length', 'hello-version', 'session-id-length', 'cipher-suites-length', 'compression-length', 'extensions-length', 'extension-length', 'duplicate-extension', 'sni-length', 'alpn-length', 'supported-versions-length', 'supported-groups-length', 'ech-length', 'hello-trailing-data'];
    expect([...reasons].sort()).toEqual(all.sort());
  });

  it('decides not-tls on the first byte and invalid record headers within the header', () => {
    expect(deliverBytewise(Buffer.from('GET / HTTP/1.1\r\n')).decidedAt).toBe(1);
    expect(deliverBytewise(Buffer.from('1602', 'hex')).decidedAt).toBe(2);
    expect(deliverBytewise(Buffer.from('1603010000', 'hex')).decidedAt).toBe(5);
    expect(deliverBytewise(Buffer.from('16030100080200', 'hex')).decidedAt).toBe(6);
  });

  it('decides too-large from the declared handshake length, before the bytes arrive', () => {
    const r = deliverBytewise(Buffer.from('1603014000' + '0100fff0', 'hex'));
    expect(r).toEqual({ result: { kind: 'too-large' }, decidedAt: 9, bytesSeen: 9 });
  });

  it('decides too-large from a record that would end past the cap', () => {
    // 1-byte records of a 11 KB hello: 6 wire bytes per hello byte.
    const wire = brokenHellos.find((b) => b.name.startsWith('small hello in 1-byte records'))?.wire ?? Buffer.alloc(0);
    const r = deliverBytewise(wire);
    expect(r.result).toEqual({ kind: 'too-large' });
    expect(r.decidedAt).toBe(Math.floor(MAX_CLIENT_HELLO_BYTES / 6) * 6 + 5);
  });
});

describe.each(valid)('delivery of $name', ({ wire }) => {
  const whole = deliverWhole(wire);
  const info = helloOf(whole.result);
  const hb = whole.result.kind === 'hello' ? whole.result.helloBytes : -1;

  it('whole: hello decided by the last byte', () => {
    expect(hb).toBe(wire.length);
    expect(whole.decidedAt).toBe(wire.length);
  });

  it('one byte per read: need-more until the very last byte', () => {
    const r = deliverBytewise(wire);
    expect(r.result).toEqual(whole.result);
    expect(r.decidedAt).toBe(wire.length);
  });

  it('split into two reads at every offset', () => {
    for (const at of splitOffsets(wire)) {
      const r = deliver(wire, [at]);
      if (r.result.kind !== 'hello' || r.result.helloBytes !== hb) expect({ at, r: r.result }).toEqual({ at, r: whole.result });
      expect(r.result).toEqual(whole.result);
    }
  });

  it('every strict prefix is need-more', () => {
    for (const at of splitOffsets(wire)) expect(readClientHello(wire.subarray(0, at))).toEqual({ kind: 'need-more' });
    expect(readClientHello(Buffer.alloc(0))).toEqual({ kind: 'need-more' });
  });

  it('re-framed into 2, 3, N records and 1-byte records', () => {
    const hsLength = unframeRecords(wire).handshake.length;
    // Records hold at most 16 KiB, so a large hello cannot be cut in two.
    const framings = [[Math.min(16384, Math.ceil(hsLength / 2))], [Math.min(16384, Math.ceil(hsLength / 3))], [1], [1, 2, 3, 5, 8, 13, 21, 34, 55, 89], [7], [512], [16384], [4, 1, 4]];
    for (const sizes of framings) {
      const framed = reframe(wire, sizes);
      const r = deliverWhole(framed).result;
      if (framed.length > MAX_CLIENT_HELLO_BYTES) {
        expect(r).toEqual({ kind: 'too-large' });
        continue;
      }
      expect(comparable(r)).toEqual({ kind: 'hello', hello: info });
      expect(r.kind === 'hello' && r.helloBytes).toBe(framed.length);
      if (framed.length <= 12_000) expect(deliverBytewise(framed).result).toEqual(r);
      expect(deliver(framed, [3, 5, 6, 9, 10, 11, Math.floor(framed.length / 2)]).result).toEqual(r);
    }
  });

  it('with a ChangeCipherSpec and application data after it in the same read', () => {
    const more = concatBytes([wire, TRAILING_RECORDS, Buffer.from('garbage that is not TLS')]);
    expect(deliverWhole(more).result).toEqual(whole.result);
    expect(deliver(more, [wire.length - 1]).result).toEqual(whole.result);
    expect(deliver(more, [wire.length + 3]).result).toEqual(whole.result);
  });

  it('agrees with the naive reference reader', () => {
    const ref = referenceParse(wire);
    expect(ref).toBeDefined();
    expect(ref?.helloBytes).toBe(hb);
    expect(ref?.extensions).toEqual(info.extensions);
    expect(ref?.cipherSuites).toEqual(info.cipherSuites);
    expect(ref?.alpn).toEqual(info.alpn);
  });
});

describe('ClientHelloReader state', () => {
  const wire = buildClientHello();

  it('keeps answering the final outcome, whatever follows', () => {
    const reader = new ClientHelloReader();
    const r = reader.push(wire);
    expect(r.kind).toBe('hello');
    expect(reader.push(Buffer.from('16030100'))).toBe(r);
    expect(reader.push(Buffer.alloc(0))).toBe(r);
    expect(reader.result).toBe(r);
    expect(reader.bytesSeen).toBe(wire.length);
  });

  it('an empty push changes nothing', () => {
    const reader = new ClientHelloReader();
    expect(reader.push(Buffer.alloc(0))).toEqual({ kind: 'need-more' });
    reader.push(wire.subarray(0, 7));
    expect(reader.push(new Uint8Array(0))).toEqual({ kind: 'need-more' });
    expect(reader.push(wire.subarray(7)).kind).toBe('hello');
  });

  it('takes plain Uint8Array chunks', () => {
    expect(readClientHello(Uint8Array.from(wire))).toEqual(readClientHello(wire));
  });

  it('does not keep references to the pushed chunks', () => {
    const copy = Buffer.from(wire);
    const reader = new ClientHelloReader();
    reader.push(copy.subarray(0, 100));
    copy.fill(0, 0, 100);
    expect(reader.push(copy.subarray(100))).toEqual(readClientHello(wire));
  });

  it('parseClientHelloBody reads a bare body', () => {
    const body = unframeRecords(wire).handshake.subarray(4);
    const r = parseClientHelloBody(Uint8Array.from(body));
    expect(r.ok && r.hello.sni).toEqual({ kind: 'name', name: 'example.test' });
    expect(parseClientHelloBody(new Uint8Array(0))).toEqual({ ok: false, reason: 'hello-length' });
  });
});

describe('isGrease', () => {
  it('knows the 16 GREASE values and nothing else', () => {
    const grease = Array.from({ length: 65536 }, (_, v) => v).filter(isGrease);
    expect(grease).toEqual(Array.from({ length: 16 }, (_, i) => i * 0x1010 + 0x0a0a));
  });
});
