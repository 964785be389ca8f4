// Incremental reader of a PROXY protocol header (HAProxy spec, v1 text and v2 binary) in front of a connection.
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from './ip';

/** v1: "PROXY " ... CRLF, at most 107 bytes (spec §2.1). */
export const MAX_PROXY_V1_BYTES = 107;
/** v2: 16-byte fixed part plus up to 65535 bytes of addresses and TLVs. */
export const MAX_PROXY_V2_BYTES = 16 + 0xffff;
export const PROXY_V2_SIGNATURE: Uint8Array = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
const V1_PREFIX = Uint8Array.from(Buffer.from('PROXY ', 'latin1'));

/** TLV types of spec §2.2.7 and the cloud ones seen in practice. */
export const PP2_TYPE = { alpn: 0x01, authority: 0x02, crc32c: 0x03, noop: 0x04, uniqueId: 0x05, ssl: 0x20, netns: 0x30, aws: 0xea, azure: 0xee } as const;

export interface ProxyEndpoint {
  address: string;
  port: number;
}

export type ProxyFamily = 'tcp4' | 'tcp6' | 'udp4' | 'udp6' | 'unix-stream' | 'unix-dgram' | 'unspec' | 'unknown';

export interface ProxyHeader {
  version: 1 | 2;
  /** v2 LOCAL (a health check by the proxy itself): use the connection's own addresses */
  local: boolean;
  family: ProxyFamily;
  /** the original client; undefined for LOCAL, UNKNOWN, UNSPEC and unix sockets */
  src?: ProxyEndpoint;
  dst?: ProxyEndpoint;
  /** v2 TLVs in order (types and lengths; values are skipped except those below) */
  tlvs: { type: number; length: number }[];
  /** PP2_TYPE_AUTHORITY: the host name the client asked the proxy for (often the SNI) */
  authority?: string;
  /** PP2_TYPE_AWS subtype 0x01: the VPC endpoint id */
  awsVpceId?: string;
}

export type ProxyInvalidReason =
  | 'v1-too-long'
  | 'v1-line' // bare CR/LF or wrong field count
  | 'v1-protocol'
  | 'v1-address'
  | 'v1-port'
  | 'v2-version'
  | 'v2-command'
  | 'v2-family'
  | 'v2-length' // shorter than the family's address block
  | 'v2-tlv-length';

export type ProxyResult =
  | { kind: 'need-more' }
  /** bytes: header length; what follows is the proxied client's data */
  | ({ kind: 'header'; bytes: number } & ProxyHeader)
  | { kind: 'invalid'; reason: ProxyInvalidReason }
  /** the bytes cannot start a PROXY header (decided on the first byte that differs from both signatures) */
  | { kind: 'not-proxy' };

const NEED_MORE: ProxyResult = Object.freeze({ kind: 'need-more' });
const NOT_PROXY: ProxyResult = Object.freeze({ kind: 'not-proxy' });
const invalid = (reason: ProxyInvalidReason): ProxyResult => ({ kind: 'invalid', reason });

/**
 * Feed it the first bytes of a connection. v1 is read up to its CRLF (at most 107 bytes); v2 up to the length
 * in its fixed part. Bytes are copied once into a buffer that grows to the declared v2 length at most.
 */
export class ProxyHeaderReader {
  private final: ProxyResult | undefined;
  private buf = new Uint8Array(128);
  private fill = 0;
  /** 1 or 2 once the signature has been recognised */
  private version: 0 | 1 | 2 = 0;
  private need = 0;

  get result(): ProxyResult {
    return this.final ?? NEED_MORE;
  }

  push(chunk: Uint8Array): ProxyResult {
    if (this.final) return this.final;
    let i = 0;
    while (i < chunk.length) {
      if (this.version === 2 && this.need > 0) {
        // bulk copy of the v2 body
        const take = Math.min(this.need - this.fill, chunk.length - i);
        this.buf.set(chunk.subarray(i, i + take), this.fill);
        this.fill += take;
        i += take;
        if (this.fill === this.need) return (this.final = parseV2(this.buf.subarray(0, this.need)));
        continue;
      }
      const r = this.byte(chunk[i] ?? 0);
      i++;
      if (r) return (this.final = r);
    }
    return NEED_MORE;
  }

  private byte(b: number): ProxyResult | undefined {
    const at = this.fill++;
    this.buf[at] = b;
    if (this.version === 0) {
      const v1 = at < V1_PREFIX.length && V1_PREFIX[at] === b && this.matches(V1_PREFIX, at);
      const v2 = at < PROXY_V2_SIGNATURE.length && PROXY_V2_SIGNATURE[at] === b && this.matches(PROXY_V2_SIGNATURE, at);
      if (!v1 && !v2) return NOT_PROXY;
      if (v1 && at === V1_PREFIX.length - 1) this.version = 1;
      if (v2 && at === PROXY_V2_SIGNATURE.length - 1) this.version = 2;
      return undefined;
    }
    if (this.version === 1) {
      const prev = this.buf[at - 1];
      if (prev === 0x0d && b !== 0x0a) return invalid('v1-line');
      if (b === 0x0a) return prev === 0x0d ? parseV1(Buffer.from(this.buf.buffer, this.buf.byteOffset, at + 1)) : invalid('v1-line');
      return at + 1 >= MAX_PROXY_V1_BYTES ? invalid('v1-too-long') : undefined;
    }
    // v2 fixed part: byte 12 version/command, 13 family, 14..15 length
    if (at === 12) {
      if (b >> 4 !== 2) return invalid('v2-version');
      if ((b & 0x0f) > 1) return invalid('v2-command');
    }
    if (at === 13 && ((b >> 4) > 3 || (b & 0x0f) > 2)) return invalid('v2-family');
    if (at === 15) {
      this.need = 16 + (((this.buf[14] ?? 0) << 8) | b);
      if (this.need === 16) return parseV2(this.buf.subarray(0, 16));
      const grown = new Uint8Array(this.need);
      grown.set(this.buf.subarray(0, 16));
      this.buf = grown;
    }
    return undefined;
  }

  /** the bytes before `at` also match (a byte mismatching one signature may still match the other) */
  private matches(sig: Uint8Array, at: number): boolean {
    for (let k = 0; k < at; k++) if (this.buf[k] !== sig[k]) return false;
    return true;
  }
}

export function readProxyHeader(bytes: Uint8Array): ProxyResult {
  return new ProxyHeaderReader().push(bytes);
}

function parsePort(text: string): number | undefined {
  return /^(0|[1-9][0-9]{0,4})$/.test(text) && Number(text) <= 65535 ? Number(text) : undefined;
}

/** "PROXY TCP4|TCP6 src dst sport dport\r\n" or "PROXY UNKNOWN[ anything]\r\n". */
function parseV1(line: Buffer): ProxyResult {
  const text = line.toString('latin1', 6, line.length - 2);
  const bytes = line.length;
  if (text === 'UNKNOWN' || text.startsWith('UNKNOWN ')) return { kind: 'header', bytes, version: 1, local: false, family: 'unknown', tlvs: [] };
  const f = text.split(' ');
  if (f.length !== 5) return invalid('v1-line');
  const [proto, src = '', dst = '', sport = '', dport = ''] = f;
  if (proto !== 'TCP4' && proto !== 'TCP6') return invalid('v1-protocol');
  const parse = proto === 'TCP4' ? parseIpv4 : parseIpv6;
  const format = proto === 'TCP4' ? formatIpv4 : formatIpv6;
  const s = parse(src);
  const d = parse(dst);
  if (!s || !d) return invalid('v1-address');
  const sp = parsePort(sport);
  const dp = parsePort(dport);
  if (sp === undefined || dp === undefined) return invalid('v1-port');
  return { kind: 'header', bytes, version: 1, local: false, family: proto === 'TCP4' ? 'tcp4' : 'tcp6', src: { address: format(s), port: sp }, dst: { address: format(d), port: dp }, tlvs: [] };
}

const FAMILIES: Record<number, ProxyFamily> = { 0x00: 'unspec', 0x11: 'tcp4', 0x12: 'udp4', 0x21: 'tcp6', 0x22: 'udp6', 0x31: 'unix-stream', 0x32: 'unix-dgram' };
const ADDRESS_BYTES: Record<ProxyFamily, number> = { unspec: 0, tcp4: 12, udp4: 12, tcp6: 36, udp6: 36, 'unix-stream': 216, 'unix-dgram': 216, unknown: 0 };

/** The whole v2 header: 16 fixed bytes, then the address block and TLVs. */
function parseV2(h: Uint8Array): ProxyResult {
  const bytes = h.length;
  const local = ((h[12] ?? 0) & 0x0f) === 0;
  const family = FAMILIES[h[13] ?? 0] ?? 'unspec';
  // LOCAL: the receiver must ignore the address block whatever the family says (spec §2.2).
  const addressBytes = local ? 0 : ADDRESS_BYTES[family];
  if (16 + addressBytes > bytes) return invalid('v2-length');
  const header: ProxyHeader = { version: 2, local, family, tlvs: [] };
  if (!local && (family === 'tcp4' || family === 'udp4')) {
    header.src = { address: formatIpv4(h, 16), port: ((h[24] ?? 0) << 8) | (h[25] ?? 0) };
    header.dst = { address: formatIpv4(h, 20), port: ((h[26] ?? 0) << 8) | (h[27] ?? 0) };
  } else if (!local && (family === 'tcp6' || family === 'udp6')) {
    header.src = { address: formatIpv6(h, 16), port: ((h[48] ?? 0) << 8) | (h[49] ?? 0) };
    header.dst = { address: formatIpv6(h, 32), port: ((h[50] ?? 0) << 8) | (h[51] ?? 0) };
  }
  // UNSPEC: the block is of unknown format, so it is not read as TLVs either.
  if (local || family === 'unspec') return { kind: 'header', bytes, ...header };
  let p = 16 + addressBytes;
  const b = Buffer.from(h.buffer, h.byteOffset, h.byteLength);
  while (p < bytes) {
    if (p + 3 > bytes) return invalid('v2-tlv-length');
    const type = h[p] ?? 0;
    const length = ((h[p + 1] ?? 0) << 8) | (h[p + 2] ?? 0);
    const v = p + 3;
    if (v + length > bytes) return invalid('v2-tlv-length');
    header.tlvs.push({ type, length });
    if (type === PP2_TYPE.authority) header.authority = b.toString('latin1', v, v + length);
    if (type === PP2_TYPE.aws && length >= 1 && h[v] === 0x01) header.awsVpceId = b.toString('latin1', v + 1, v + length);
    p = v + length;
  }
  return { kind: 'header', bytes, ...header };
}
