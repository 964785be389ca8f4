// Builds ClientHello bytes for tests: any extension set, any record framing, deliberately broken ones too.

export interface HelloExtension {
  type: number;
  data: Uint8Array;
}

export interface HelloSpec {
  legacyVersion?: number;
  /** 32 bytes; default 0x00..0x1f */
  random?: Uint8Array;
  /** default 32 bytes of 0xee */
  sessionId?: Uint8Array;
  cipherSuites?: number[];
  compressionMethods?: number[];
  /** undefined: the default set (SNI example.test, ALPN h2, versions, groups); null: no extensions block */
  extensions?: HelloExtension[] | null;
  /** server name for the default extension set */
  serverName?: string;
}

export interface FrameOptions {
  /** payload size of each record; the last size repeats. Default: one record per 16384 bytes. */
  recordSizes?: number[];
  /** record-layer version, default 0x0301 */
  recordVersion?: number;
  /** record content type, default 0x16 */
  contentType?: number;
}

const enc = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));

export function concatBytes(parts: readonly Uint8Array[]): Buffer {
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength))));
}

export function u8(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff);
}

export function u16(v: number): Uint8Array {
  return Uint8Array.of((v >> 8) & 0xff, v & 0xff);
}

export function u24(v: number): Uint8Array {
  return Uint8Array.of((v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
}

/** opaque vector with a 1- or 2-byte length prefix */
export function vec(prefix: 1 | 2, body: Uint8Array): Buffer {
  return concatBytes([prefix === 1 ? u8(body.length) : u16(body.length), body]);
}

/** Extension constructors; each returns { type, data } with well-formed data unless told otherwise. */
export const helloExtensions = {
  raw(type: number, data: Uint8Array = new Uint8Array(0)): HelloExtension {
    return { type, data };
  },
  /** names: strings are host_name (type 0); objects choose the name type or raw bytes */
  serverName(names: (string | { type?: number; name: string | Uint8Array })[]): HelloExtension {
    const entries = names.map((n) => {
      const e = typeof n === 'string' ? { type: 0, name: n } : n;
      const bytes = typeof e.name === 'string' ? enc(e.name) : e.name;
      return concatBytes([u8(e.type ?? 0), vec(2, bytes)]);
    });
    return { type: 0x0000, data: vec(2, concatBytes(entries)) };
  },
  alpn(protocols: (string | Uint8Array)[]): HelloExtension {
    return { type: 0x0010, data: vec(2, concatBytes(protocols.map((p) => vec(1, typeof p === 'string' ? enc(p) : p)))) };
  },
  supportedVersions(versions: number[]): HelloExtension {
    return { type: 0x002b, data: vec(1, concatBytes(versions.map(u16))) };
  },
  supportedGroups(groups: number[]): HelloExtension {
    return { type: 0x000a, data: vec(2, concatBytes(groups.map(u16))) };
  },
  keyShare(entries: { group: number; length: number }[]): HelloExtension {
    return { type: 0x0033, data: vec(2, concatBytes(entries.map((e) => concatBytes([u16(e.group), vec(2, new Uint8Array(e.length).fill(0x42))])))) };
  },
  padding(length: number): HelloExtension {
    return { type: 0x0015, data: new Uint8Array(length) };
  },
  echOuter(opts: { configId: number; kdfId?: number; aeadId?: number; encLength?: number; payloadLength: number }): HelloExtension {
    return {
      type: 0xfe0d,
      data: concatBytes([u8(0), u16(opts.kdfId ?? 0x0001), u16(opts.aeadId ?? 0x0001), u8(opts.configId), vec(2, new Uint8Array(opts.encLength ?? 32).fill(0x5e)), vec(2, new Uint8Array(opts.payloadLength).fill(0xec))]),
    };
  },
  echInner(): HelloExtension {
    return { type: 0xfe0d, data: u8(1) };
  },
};

export const DEFAULT_CIPHER_SUITES = [0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x009c, 0x009d, 0x002f, 0x0035];

export function defaultExtensions(serverName = 'example.test'): HelloExtension[] {
  return [
    helloExtensions.serverName([serverName]),
    helloExtensions.supportedGroups([0x001d, 0x0017, 0x0018]),
    helloExtensions.alpn(['h2', 'http/1.1']),
    helloExtensions.supportedVersions([0x0304, 0x0303]),
    helloExtensions.keyShare([{ group: 0x001d, length: 32 }]),
  ];
}

/** The ClientHello body: the bytes after the 4-byte handshake header. */
export function buildHelloBody(spec: HelloSpec = {}): Buffer {
  const random = spec.random ?? Uint8Array.from({ length: 32 }, (_, i) => i);
  const sessionId = spec.sessionId ?? new Uint8Array(32).fill(0xee);
  const suites = spec.cipherSuites ?? DEFAULT_CIPHER_SUITES;
  const compression = spec.compressionMethods ?? [0];
  const exts = spec.extensions === undefined ? defaultExtensions(spec.serverName) : spec.extensions;
  const parts: Uint8Array[] = [u16(spec.legacyVersion ?? 0x0303), random, vec(1, sessionId), vec(2, concatBytes(suites.map(u16))), vec(1, Uint8Array.from(compression))];
  if (exts !== null) parts.push(vec(2, concatBytes(exts.map((e) => concatBytes([u16(e.type), vec(2, e.data)])))));
  return concatBytes(parts);
}

/** The handshake message: type 1, 24-bit length, body. */
export function buildHandshake(spec: HelloSpec = {}): Buffer {
  const body = buildHelloBody(spec);
  return concatBytes([u8(1), u24(body.length), body]);
}

/** Cuts handshake bytes into TLS records. Record lengths are not validated, so broken framings can be built. */
export function frameRecords(handshake: Uint8Array, opts: FrameOptions = {}): Buffer {
  const sizes = opts.recordSizes ?? [16384];
  const parts: Uint8Array[] = [];
  let off = 0;
  let k = 0;
  while (off < handshake.length) {
    const size = Math.max(1, sizes[Math.min(k, sizes.length - 1)] ?? 16384);
    const frag = handshake.subarray(off, off + size);
    parts.push(u8(opts.contentType ?? 0x16), u16(opts.recordVersion ?? 0x0301), u16(frag.length), frag);
    off += frag.length;
    k++;
  }
  return concatBytes(parts);
}

/** A ClientHello ready for the wire. */
export function buildClientHello(spec: HelloSpec = {}, frame: FrameOptions = {}): Buffer {
  return frameRecords(buildHandshake(spec), frame);
}

/**
 * Concatenates the payloads of the leading handshake records (the inverse of frameRecords), for re-framing
 * captured hellos. Stops at the first record that is not 0x16 or does not fit; returns the record version seen.
 */
export function unframeRecords(wire: Uint8Array): { handshake: Buffer; recordVersion: number; records: number; bytes: number } {
  const parts: Uint8Array[] = [];
  let off = 0;
  let records = 0;
  let recordVersion = 0x0301;
  while (off + 5 <= wire.length && wire[off] === 0x16) {
    const len = ((wire[off + 3] ?? 0) << 8) | (wire[off + 4] ?? 0);
    if (off + 5 + len > wire.length) break;
    if (records === 0) recordVersion = ((wire[off + 1] ?? 0) << 8) | (wire[off + 2] ?? 0);
    parts.push(wire.subarray(off + 5, off + 5 + len));
    off += 5 + len;
    records++;
  }
  return { handshake: concatBytes(parts), recordVersion, records, bytes: off };
}

/** Fills a padding extension so the whole handshake message is `total` bytes (when it can). */
export function padHandshakeTo(spec: HelloSpec, total: number): Buffer {
  const base = spec.extensions === undefined ? defaultExtensions(spec.serverName) : (spec.extensions ?? []);
  const without = buildHandshake({ ...spec, extensions: base }).length;
  const pad = Math.max(0, total - without - 4);
  return buildHandshake({ ...spec, extensions: [...base, helloExtensions.padding(pad)] });
}

/** A ChangeCipherSpec record and an application-data record, as a client may send right after its hello. */
export const TRAILING_RECORDS = Buffer.from('140303000101' + '1703030005' + '0102030405', 'hex');
