// Incremental TLS ClientHello reader: reassembles the hello across TLS records and TCP reads, then
// extracts what the edge decides on (SNI, ALPN, versions, ECH). Never throws; every outcome is a value.
import type { NameProblem } from './names';
import { normalizeName } from './names';

/**
 * Most wire bytes (record headers included) the records carrying a ClientHello may occupy. The caller
 * buffers every byte it forwards, so the cap bounds the caller's buffer, not only the handshake message.
 */
export const MAX_CLIENT_HELLO_BYTES = 64 * 1024;
/** Largest TLSPlaintext fragment (RFC 8446 §5.1). */
export const MAX_RECORD_PAYLOAD = 16 * 1024;
export const RECORD_HEADER_BYTES = 5;
export const HANDSHAKE_HEADER_BYTES = 4;

export const CONTENT_TYPE_HANDSHAKE = 0x16;
export const HANDSHAKE_CLIENT_HELLO = 0x01;

/** Extension code points this reader looks inside. */
export const EXTENSION = {
  serverName: 0x0000,
  supportedGroups: 0x000a,
  alpn: 0x0010,
  padding: 0x0015,
  supportedVersions: 0x002b,
  keyShare: 0x0033,
  encryptedClientHello: 0xfe0d,
} as const;

/** What the server_name extension said. Only name_type 0 (host_name) entries count. */
export type SniResult =
  /** no server_name extension */
  | { kind: 'none' }
  /** exactly one host_name, valid, in canonical form (see normalizeName) */
  | { kind: 'name'; name: string }
  /** the extension is there but names nothing: empty list, only non-host_name entries, or a zero-length name */
  | { kind: 'empty' }
  /** the host_name is an IP address (RFC 6066 forbids it); raw is the bytes as latin1 */
  | { kind: 'ip-literal'; raw: string }
  /** the host_name is not a valid DNS name; raw is the bytes as latin1 (one character per byte) */
  | { kind: 'invalid'; raw: string; problem: NameProblem }
  /** several host_name entries (RFC 6066 allows one); raw names as latin1, in wire order */
  | { kind: 'multiple'; names: string[] };

/** Encrypted Client Hello (extension 0xfe0d). With 'outer', the visible SNI is the client-facing server's. */
export interface EchInfo {
  present: boolean;
  type?: 'outer' | 'inner';
  configId?: number;
  payloadLength?: number;
}

export interface ClientHelloInfo {
  /** ClientHello.legacy_version, e.g. 0x0303 */
  legacyVersion: number;
  sni: SniResult;
  /** ALPN protocol names in client order, GREASE removed; [] when the extension is absent */
  alpn: string[];
  /** supported_versions, GREASE removed; [] when absent (a TLS ≤ 1.2 client) */
  supportedVersions: number[];
  /** supported_groups, GREASE removed; [] when absent */
  supportedGroups: number[];
  /** cipher suites in client order, GREASE removed */
  cipherSuites: number[];
  /** extension types in wire order, GREASE removed */
  extensions: number[];
  ech: EchInfo;
  /** a GREASE value (RFC 8701) was seen in cipher suites, extensions, versions, groups or ALPN */
  grease: boolean;
}

/** Stable reason codes for a record of type 0x16 that is not a well-formed ClientHello. */
export type InvalidHelloReason =
  | 'record-version'
  | 'record-length'
  | 'record-type'
  | 'handshake-type'
  | 'hello-length'
  | 'hello-version'
  | 'session-id-length'
  | 'cipher-suites-length'
  | 'compression-length'
  | 'extensions-length'
  | 'extension-length'
  | 'duplicate-extension'
  | 'sni-length'
  | 'alpn-length'
  | 'supported-versions-length'
  | 'supported-groups-length'
  | 'ech-length'
  | 'hello-trailing-data';

export type HelloResult =
  /** every byte so far is consistent with a ClientHello that has not ended yet */
  | { kind: 'need-more' }
  /** helloBytes: received bytes, from the first one pushed, that belong to the records carrying the hello */
  | { kind: 'hello'; hello: ClientHelloInfo; helloBytes: number; records: number }
  /** the first record is not a TLS handshake record (other protocol, SSLv2-style hello, alert...) */
  | { kind: 'not-tls' }
  | { kind: 'invalid'; reason: InvalidHelloReason }
  /** the hello does not end within MAX_CLIENT_HELLO_BYTES received bytes */
  | { kind: 'too-large' };

const NEED_MORE: HelloResult = Object.freeze({ kind: 'need-more' });
const NOT_TLS: HelloResult = Object.freeze({ kind: 'not-tls' });
const TOO_LARGE: HelloResult = Object.freeze({ kind: 'too-large' });

/** GREASE values (RFC 8701) are 0x?a?a with both bytes equal: 0x0a0a, 0x1a1a ... 0xfafa. */
export function isGrease(v: number): boolean {
  return (v & 0x0f0f) === 0x0a0a && v >> 8 === (v & 0xff);
}

/**
 * Feed it the bytes a client sends, in order, in whatever chunks they arrive; each push answers with the
 * outcome so far. Once the answer is final (anything but need-more) later pushes return it unchanged, so
 * bytes after the hello (ChangeCipherSpec, early data) never alter it. Work is linear in the bytes pushed:
 * handshake bytes are copied once into a buffer sized from the handshake header.
 */
export class ClientHelloReader {
  private final: HelloResult | undefined;
  /** wire bytes consumed so far */
  private seen = 0;
  private records = 0;
  private readonly recordHeader = new Uint8Array(RECORD_HEADER_BYTES);
  private recordHeaderFill = 0;
  /** payload bytes still due in the current record; meaningful while inRecord */
  private recordLeft = 0;
  private inRecord = false;
  private readonly handshakeHeader = new Uint8Array(HANDSHAKE_HEADER_BYTES);
  private handshakeHeaderFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;

  /** Wire bytes consumed so far (stops growing once the outcome is final). */
  get bytesSeen(): number {
    return this.seen;
  }

  get result(): HelloResult {
    return this.final ?? NEED_MORE;
  }

  push(chunk: Uint8Array): HelloResult {
    if (this.final) return this.final;
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (!this.inRecord) {
        const b = chunk[i] ?? 0;
        i++;
        this.seen++;
        const r = this.recordHeaderByte(b);
        if (r) return (this.final = r);
        continue;
      }
      const take = Math.min(this.recordLeft, n - i);
      const r = this.handshakeBytes(chunk, i, take);
      i += take;
      if (r) return (this.final = r);
    }
    return NEED_MORE;
  }

  private recordHeaderByte(b: number): HelloResult | undefined {
    const at = this.recordHeaderFill;
    this.recordHeader[at] = b;
    this.recordHeaderFill = at + 1;
    switch (at) {
      case 0:
        if (b !== CONTENT_TYPE_HANDSHAKE) return this.records === 0 ? NOT_TLS : invalid('record-type');
        return undefined;
      case 1:
        return b === 0x03 ? undefined : invalid('record-version');
      case 2:
        return b <= 0x04 ? undefined : invalid('record-version');
      case 3:
        return undefined;
      default: {
        const len = ((this.recordHeader[3] ?? 0) << 8) | b;
        if (len === 0 || len > MAX_RECORD_PAYLOAD) return invalid('record-length');
        // The hello must end with a record, so a record ending past the cap means too-large whatever follows.
        if (this.seen + len > MAX_CLIENT_HELLO_BYTES) return TOO_LARGE;
        this.records++;
        this.recordHeaderFill = 0;
        this.recordLeft = len;
        this.inRecord = true;
        return undefined;
      }
    }
  }

  /** Consumes `take` payload bytes of the current record from chunk[from...]. */
  private handshakeBytes(chunk: Uint8Array, from: number, take: number): HelloResult | undefined {
    let j = from;
    const end = from + take;
    while (j < end) {
      if (!this.body) {
        const b = chunk[j] ?? 0;
        j++;
        const at = this.handshakeHeaderFill;
        this.handshakeHeader[at] = b;
        this.handshakeHeaderFill = at + 1;
        if (at === 0 && b !== HANDSHAKE_CLIENT_HELLO) return this.consumed(j - from, invalid('handshake-type'));
        if (at === 3) {
          const len = ((this.handshakeHeader[1] ?? 0) << 16) | ((this.handshakeHeader[2] ?? 0) << 8) | b;
          const message = HANDSHAKE_HEADER_BYTES + len;
          // Fewest wire bytes such a message can take: itself plus one header per full-size record.
          if (message + RECORD_HEADER_BYTES * Math.ceil(message / MAX_RECORD_PAYLOAD) > MAX_CLIENT_HELLO_BYTES) return this.consumed(j - from, TOO_LARGE);
          this.body = Buffer.allocUnsafe(len);
          this.bodyFill = 0;
          if (len === 0) return this.complete(j - from);
        }
        continue;
      }
      const want = this.body.length - this.bodyFill;
      const copy = Math.min(want, end - j);
      if (copy < 16) {
        for (let k = 0; k < copy; k++) this.body[this.bodyFill + k] = chunk[j + k] ?? 0;
      } else {
        this.body.set(chunk.subarray(j, j + copy), this.bodyFill);
      }
      this.bodyFill += copy;
      j += copy;
      if (copy === want) return this.complete(j - from);
    }
    return this.consumed(take, undefined);
  }

  private consumed(bytes: number, r: HelloResult | undefined): HelloResult | undefined {
    this.seen += bytes;
    this.recordLeft -= bytes;
    if (this.recordLeft === 0) this.inRecord = false;
    return r;
  }

  private complete(bytes: number): HelloResult {
    this.consumed(bytes, undefined);
    const parsed = parseClientHelloBody(this.body ?? Buffer.alloc(0));
    if (!parsed.ok) return invalid(parsed.reason);
    // The hello must end its record: anything after it would be a second handshake message in the first flight.
    if (this.inRecord) return invalid('hello-trailing-data');
    return { kind: 'hello', hello: parsed.hello, helloBytes: this.seen, records: this.records };
  }
}

/** Reads a ClientHello from bytes already in hand (same outcomes as one ClientHelloReader.push). */
export function readClientHello(bytes: Uint8Array): HelloResult {
  return new ClientHelloReader().push(bytes);
}

function invalid(reason: InvalidHelloReason): HelloResult {
  return { kind: 'invalid', reason };
}

type BodyResult = { ok: true; hello: ClientHelloInfo } | { ok: false; reason: InvalidHelloReason };

function bad(reason: InvalidHelloReason): BodyResult {
  return { ok: false, reason };
}

function u16(b: Uint8Array, o: number): number {
  return ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
}

/**
 * Parses a ClientHello handshake body (the bytes after the 4-byte handshake header). Every vector is read
 * inside its declared length and that length inside its parent's; the extensions block must end the body.
 */
export function parseClientHelloBody(input: Uint8Array): BodyResult {
  const b = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const end = b.length;
  if (end < 2 + 32 + 1) return bad('hello-length');
  const legacyVersion = u16(b, 0);
  if (legacyVersion >> 8 !== 0x03) return bad('hello-version');
  let o = 34;
  const sessionIdLength = b[o] ?? 0;
  o += 1;
  if (sessionIdLength > 32 || o + sessionIdLength > end) return bad('session-id-length');
  o += sessionIdLength;

  if (o + 2 > end) return bad('cipher-suites-length');
  const suitesLength = u16(b, o);
  o += 2;
  if (suitesLength < 2 || suitesLength % 2 !== 0 || o + suitesLength > end) return bad('cipher-suites-length');
  let grease = false;
  const cipherSuites: number[] = [];
  for (let p = o; p < o + suitesLength; p += 2) {
    const v = u16(b, p);
    if (isGrease(v)) grease = true;
    else cipherSuites.push(v);
  }
  o += suitesLength;

  if (o + 1 > end) return bad('compression-length');
  const compressionLength = b[o] ?? 0;
  o += 1;
  if (compressionLength < 1 || o + compressionLength > end) return bad('compression-length');
  o += compressionLength;

  const hello: ClientHelloInfo = {
    legacyVersion,
    sni: { kind: 'none' },
    alpn: [],
    supportedVersions: [],
    supportedGroups: [],
    cipherSuites,
    extensions: [],
    ech: { present: false },
    grease,
  };
  // A TLS 1.0-1.2 hello may stop right after the compression methods.
  if (o === end) return { ok: true, hello };
  if (o + 2 > end) return bad('extensions-length');
  const extensionsLength = u16(b, o);
  o += 2;
  if (o + extensionsLength !== end) return bad('extensions-length');

  const seenTypes = new Set<number>();
  while (o < end) {
    if (o + 4 > end) return bad('extension-length');
    const type = u16(b, o);
    const len = u16(b, o + 2);
    o += 4;
    if (o + len > end) return bad('extension-length');
    if (seenTypes.has(type)) return bad('duplicate-extension');
    seenTypes.add(type);
    if (isGrease(type)) hello.grease = true;
    else hello.extensions.push(type);
    let problem: InvalidHelloReason | undefined;
    switch (type) {
      case EXTENSION.serverName:
        problem = readServerName(b, o, len, hello);
        break;
      case EXTENSION.alpn:
        problem = readAlpn(b, o, len, hello);
        break;
      case EXTENSION.supportedVersions:
        problem = readU16List(b, o, len, 1, hello.supportedVersions, hello) ? undefined : 'supported-versions-length';
        break;
      case EXTENSION.supportedGroups:
        problem = readU16List(b, o, len, 2, hello.supportedGroups, hello) ? undefined : 'supported-groups-length';
        break;
      case EXTENSION.encryptedClientHello:
        problem = readEch(b, o, len, hello);
        break;
    }
    if (problem) return bad(problem);
    o += len;
  }
  return { ok: true, hello };
}

/** RFC 6066 §3: ServerNameList server_name_list<1..2^16-1>; each entry name_type + opaque<1..2^16-1>. */
function readServerName(b: Buffer, start: number, len: number, hello: ClientHelloInfo): InvalidHelloReason | undefined {
  if (len < 2) return 'sni-length';
  const listEnd = start + 2 + u16(b, start);
  if (listEnd !== start + len) return 'sni-length';
  const names: string[] = [];
  let p = start + 2;
  while (p < listEnd) {
    if (p + 3 > listEnd) return 'sni-length';
    const nameType = b[p] ?? 0;
    const nameLength = u16(b, p + 1);
    p += 3;
    if (p + nameLength > listEnd) return 'sni-length';
    // Unknown name types also start with a 16-bit length (RFC 6066 §3), so they can be stepped over.
    if (nameType === 0) names.push(b.toString('latin1', p, p + nameLength));
    p += nameLength;
  }
  hello.sni = sniFrom(names);
  return undefined;
}

function sniFrom(names: string[]): SniResult {
  if (names.length > 1) return { kind: 'multiple', names };
  const raw = names[0];
  if (raw === undefined || raw.length === 0) return { kind: 'empty' };
  const r = normalizeName(raw);
  if (r.ok) return { kind: 'name', name: r.name };
  if (r.problem === 'ip-literal') return { kind: 'ip-literal', raw };
  return { kind: 'invalid', raw, problem: r.problem };
}

/** RFC 7301: ProtocolNameList protocol_name_list<2..2^16-1>; ProtocolName opaque<1..2^8-1>. */
function readAlpn(b: Buffer, start: number, len: number, hello: ClientHelloInfo): InvalidHelloReason | undefined {
  if (len < 2) return 'alpn-length';
  const listLength = u16(b, start);
  const listEnd = start + 2 + listLength;
  if (listLength < 2 || listEnd !== start + len) return 'alpn-length';
  let p = start + 2;
  while (p < listEnd) {
    const nameLength = b[p] ?? 0;
    p += 1;
    if (nameLength === 0 || p + nameLength > listEnd) return 'alpn-length';
    if (nameLength === 2 && isGrease(u16(b, p))) hello.grease = true;
    else hello.alpn.push(b.toString('latin1', p, p + nameLength));
    p += nameLength;
  }
  return undefined;
}

/** A vector of uint16 with a `prefix`-byte length (1 for supported_versions, 2 for supported_groups). */
function readU16List(b: Buffer, start: number, len: number, prefix: 1 | 2, into: number[], hello: ClientHelloInfo): boolean {
  if (len < prefix) return false;
  const listLength = prefix === 1 ? (b[start] ?? 0) : u16(b, start);
  if (listLength < 2 || listLength % 2 !== 0 || prefix + listLength !== len) return false;
  for (let p = start + prefix; p < start + len; p += 2) {
    const v = u16(b, p);
    if (isGrease(v)) hello.grease = true;
    else into.push(v);
  }
  return true;
}

/**
 * draft-ietf-tls-esni: ECHClientHello { ECHClientHelloType type; outer(0): HpkeSymmetricCipherSuite (4),
 * uint8 config_id, opaque enc<0..2^16-1>, opaque payload<1..2^16-1>; inner(1): nothing }.
 */
function readEch(b: Buffer, start: number, len: number, hello: ClientHelloInfo): InvalidHelloReason | undefined {
  if (len < 1) return 'ech-length';
  const type = b[start] ?? 0;
  if (type === 1) {
    if (len !== 1) return 'ech-length';
    hello.ech = { present: true, type: 'inner' };
    return undefined;
  }
  if (type !== 0) {
    hello.ech = { present: true };
    return undefined;
  }
  const end = start + len;
  let p = start + 1 + 4;
  if (p + 1 + 2 > end) return 'ech-length';
  const configId = b[p] ?? 0;
  p += 1;
  const encLength = u16(b, p);
  p += 2 + encLength;
  if (p + 2 > end) return 'ech-length';
  const payloadLength = u16(b, p);
  p += 2;
  if (payloadLength === 0 || p + payloadLength !== end) return 'ech-length';
  hello.ech = { present: true, type: 'outer', configId, payloadLength };
  return undefined;
}
