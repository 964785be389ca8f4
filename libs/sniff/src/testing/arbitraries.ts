// fast-check generators for the ClientHello fuzzers: lying length fields, truncations, flips, re-framings, chunkings.
import fc from 'fast-check';
import { concatBytes, frameRecords, unframeRecords } from './build-hello';

export interface LengthField {
  /** offset in the handshake message (handshake header included) */
  offset: number;
  size: 1 | 2 | 3;
  what: string;
}

const rd = (b: Uint8Array, o: number, size: number): number => {
  let v = 0;
  for (let i = 0; i < size; i++) v = v * 256 + (b[o + i] ?? 0);
  return v;
};

/**
 * Every length field of a well-formed ClientHello handshake message, down into the extensions this library
 * reads (server_name, ALPN, versions, groups, key_share, ECH). Stops quietly where the message is not well formed.
 */
export function lengthFields(hs: Uint8Array): LengthField[] {
  const out: LengthField[] = [{ offset: 1, size: 3, what: 'handshake length' }];
  let p = 4 + 34;
  out.push({ offset: p, size: 1, what: 'session id length' });
  p += 1 + rd(hs, p, 1);
  out.push({ offset: p, size: 2, what: 'cipher suites length' });
  p += 2 + rd(hs, p, 2);
  out.push({ offset: p, size: 1, what: 'compression length' });
  p += 1 + rd(hs, p, 1);
  if (p + 2 > hs.length) return out;
  out.push({ offset: p, size: 2, what: 'extensions length' });
  const end = Math.min(hs.length, p + 2 + rd(hs, p, 2));
  p += 2;
  while (p + 4 <= end) {
    const type = rd(hs, p, 2);
    const len = rd(hs, p + 2, 2);
    out.push({ offset: p + 2, size: 2, what: `extension 0x${type.toString(16)} length` });
    const d = p + 4;
    const dEnd = Math.min(end, d + len);
    const sub = (offset: number, size: 1 | 2, what: string): void => {
      if (offset + size <= dEnd) out.push({ offset, size, what });
    };
    if (type === 0x0000) {
      sub(d, 2, 'server name list length');
      for (let q = d + 2; q + 3 <= dEnd; q += 3 + rd(hs, q + 1, 2)) sub(q + 1, 2, 'server name length');
    } else if (type === 0x0010) {
      sub(d, 2, 'ALPN list length');
      for (let q = d + 2; q + 1 <= dEnd; q += 1 + rd(hs, q, 1)) sub(q, 1, 'ALPN name length');
    } else if (type === 0x002b) {
      sub(d, 1, 'supported versions length');
    } else if (type === 0x000a) {
      sub(d, 2, 'supported groups length');
    } else if (type === 0x0033) {
      sub(d, 2, 'key share list length');
      for (let q = d + 2; q + 4 <= dEnd; q += 4 + rd(hs, q + 2, 2)) sub(q + 2, 2, 'key share length');
    } else if (type === 0xfe0d && hs[d] === 0) {
      sub(d + 6, 2, 'ECH enc length');
      const pay = d + 8 + rd(hs, d + 6, 2);
      sub(pay, 2, 'ECH payload length');
    }
    p += 4 + len;
  }
  return out;
}

/** Handshake bytes with one length field changed by delta (wrapping within the field's size). */
export function lie(hs: Uint8Array, field: LengthField, delta: number): Buffer {
  const out = Buffer.from(hs);
  const mod = 256 ** field.size;
  const v = (((rd(hs, field.offset, field.size) + delta) % mod) + mod) % mod;
  out.writeUIntBE(v, field.offset, field.size);
  return out;
}

export type Mutation =
  | { kind: 'lie'; field: number; delta: number }
  | { kind: 'record-lie'; record: number; delta: number }
  | { kind: 'truncate'; keep: number }
  | { kind: 'flip'; at: { pos: number; value: number }[] }
  | { kind: 'insert'; pos: number; bytes: Uint8Array }
  | { kind: 'delete'; pos: number; count: number }
  | { kind: 'reframe'; sizes: number[] };

/** Applies one mutation to a wire-form hello. Positions are taken modulo the relevant length. */
export function mutate(wire: Uint8Array, m: Mutation): Buffer {
  const { handshake, recordVersion } = unframeRecords(wire);
  switch (m.kind) {
    case 'lie': {
      const fields = lengthFields(handshake).filter((f) => f.offset + f.size <= handshake.length);
      const f = fields[m.field % fields.length];
      return f ? frameRecords(lie(handshake, f, m.delta), { recordVersion }) : Buffer.from(wire);
    }
    case 'record-lie': {
      const out = Buffer.from(wire);
      let off = 0;
      for (let k = 0; off + 5 <= out.length; k++) {
        const len = out.readUInt16BE(off + 3);
        if (k === m.record) {
          out.writeUInt16BE((((len + m.delta) % 65536) + 65536) % 65536, off + 3);
          break;
        }
        off += 5 + len;
      }
      return out;
    }
    case 'truncate':
      return Buffer.from(wire.subarray(0, wire.length === 0 ? 0 : m.keep % wire.length));
    case 'flip': {
      const out = Buffer.from(wire);
      for (const { pos, value } of m.at) if (out.length > 0) out[pos % out.length] = value;
      return out;
    }
    case 'insert': {
      const pos = wire.length === 0 ? 0 : m.pos % (wire.length + 1);
      return concatBytes([wire.subarray(0, pos), m.bytes, wire.subarray(pos)]);
    }
    case 'delete': {
      const pos = wire.length === 0 ? 0 : m.pos % wire.length;
      return concatBytes([wire.subarray(0, pos), wire.subarray(pos + m.count)]);
    }
    case 'reframe':
      return frameRecords(handshake, { recordSizes: m.sizes, recordVersion });
  }
}

const smallDelta = fc.oneof(fc.integer({ min: -3, max: 3 }).filter((d) => d !== 0), fc.integer({ min: -70000, max: 70000 }));

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('lie' as const), field: fc.nat(), delta: smallDelta }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('record-lie' as const), record: fc.nat({ max: 4 }), delta: smallDelta }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.array(fc.record({ pos: fc.nat(), value: fc.nat({ max: 255 }) }), { minLength: 1, maxLength: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), pos: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), pos: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reframe' as const), sizes: fc.array(fc.integer({ min: 1, max: 16384 }), { minLength: 1, maxLength: 6 }) }) },
);

/** Cut points for a delivery: a few random offsets (deliver() sorts and clamps them). */
export const cutsArb: fc.Arbitrary<number[]> = fc.oneof(fc.array(fc.nat({ max: 70000 }), { maxLength: 8 }), fc.array(fc.nat({ max: 600 }), { maxLength: 40 }));
