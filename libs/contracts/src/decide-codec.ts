// Hand-written protobuf codec for the decision messages (DecideRequest/Response and the
// DecideStream envelopes): the wire format of policy_decision.proto, decoded into exactly the
// objects proto-loader produces with LOADER_OPTIONS (keepCase, longs Number, enums String,
// defaults), without protobufjs's fromObject/encode/decode/toObject passes. These messages are
// the whole of the decision path's traffic; the other messages keep protobufjs.
import type { DecideRequest, DecideRequest__Output } from './generated/portcullis/v1/DecideRequest';
import type { DecideResponse, DecideResponse__Output } from './generated/portcullis/v1/DecideResponse';
import type { DecideStreamRequest, DecideStreamRequest__Output } from './generated/portcullis/v1/DecideStreamRequest';
import type { DecideStreamResponse, DecideStreamResponse__Output } from './generated/portcullis/v1/DecideStreamResponse';

/** A message that is not a well-formed encoding of the expected type. */
export class DecideCodecError extends Error {
  readonly code = 'PORTCULLIS_ERR_DECIDE_MESSAGE';
}

/**
 * A value this encoder does not take on its fast path (a Long, a number as a string, an
 * unknown enum name): the caller encodes the message with protobufjs instead, whose
 * fromObject conversions stay the reference.
 */
class Unsupported extends Error {}
const UNSUPPORTED = new Unsupported('value outside the hand encoder');

const VERDICT_NUMBER: Record<string, number> = { VERDICT_UNSPECIFIED: 0, VERDICT_ALLOW: 1, VERDICT_DENY: 2 };
const VERDICT_NAME = ['VERDICT_UNSPECIFIED', 'VERDICT_ALLOW', 'VERDICT_DENY'] as const;
const TWO_32 = 4294967296;

// ---- encoding -------------------------------------------------------------------------------

/** One growing scratch buffer: a message is written here, then copied out at its exact size. */
const SCRATCH_BYTES = 16 * 1024;
/** a scratch buffer grown past this for one big message is let go afterwards */
const SCRATCH_KEEP_BYTES = 1024 * 1024;
let out = Buffer.allocUnsafe(SCRATCH_BYTES);
let pos = 0;

function room(n: number): void {
  if (pos + n <= out.length) return;
  const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, pos + n));
  out.copy(bigger, 0, 0, pos);
  out = bigger;
}

function varint(v: number): void {
  room(10);
  while (v >= 0x80) {
    out[pos++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[pos++] = v;
}

function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** tag byte(s) for field numbers below 16 are one byte: (field << 3) | wireType */
function tag(field: number, wire: number): void {
  room(1);
  out[pos++] = (field << 3) | wire;
}

function str(field: number, s: unknown): void {
  if (s === undefined || s === null || s === '') return;
  if (typeof s !== 'string') throw UNSUPPORTED;
  tag(field, 2);
  const n = s.length;
  room(n * 3 + 5);
  // short ASCII (names, ids, codes): byte per char, no native call
  if (n < 128) {
    let i = 0;
    const at = pos + 1;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      out[at + i] = c;
    }
    if (i === n) {
      out[pos] = n;
      pos = at + n;
      return;
    }
  }
  const len = Buffer.byteLength(s);
  varint(len);
  out.write(s, pos, len, 'utf8');
  pos += len;
}

function uint(field: number, v: unknown, max: number): void {
  if (v === undefined || v === null || v === 0) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw UNSUPPORTED;
  tag(field, 0);
  varint(v);
}

function bool(field: number, v: unknown): void {
  if (v === undefined || v === null || v === false) return;
  if (v !== true) throw UNSUPPORTED;
  room(2);
  out[pos++] = field << 3;
  out[pos++] = 1;
}

/** Writes a length-delimited sub-message with `body`, one length byte reserved and moved when longer. */
function sub(field: number, body: () => void): void {
  tag(field, 2);
  room(1);
  const at = pos++;
  body();
  const len = pos - at - 1;
  if (len < 0x80) {
    out[at] = len;
    return;
  }
  const extra = varintSize(len) - 1;
  room(extra);
  out.copy(out, at + 1 + extra, at + 1, pos);
  pos += extra;
  const end = pos;
  pos = at;
  varint(len);
  pos = end;
}

function writeDecideRequest(r: DecideRequest): void {
  str(1, r.sni);
  str(2, r.connect_host);
  uint(3, r.port, TWO_32 - 1);
  str(4, r.source_ip);
  str(5, r.protocol);
  bool(6, r.ech);
  bool(7, r.ech_grease);
  str(8, r.node_id);
  str(9, r.listener);
  str(10, r.flow_id);
  str(11, r.no_name_reason);
  str(12, r.traceparent);
}

/** Encodings of frozen responses (a service answers with a few shared, immutable ones). */
const frozenResponses = new WeakMap<object, Buffer>();

function writeDecideResponse(r: DecideResponse): void {
  const frozen = Object.isFrozen(r) && (r.allow_private === undefined || Object.isFrozen(r.allow_private));
  if (frozen) {
    const done = frozenResponses.get(r);
    if (done) {
      room(done.length);
      done.copy(out, pos);
      pos += done.length;
      return;
    }
  }
  const start = pos;
  const v = r.verdict;
  if (v !== undefined && v !== null) {
    const n = typeof v === 'string' ? VERDICT_NUMBER[v] : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n >= TWO_32) throw UNSUPPORTED;
    uint(1, n, TWO_32 - 1);
  }
  str(2, r.rule_id);
  str(3, r.reason);
  str(4, r.detail);
  uint(5, r.policy_version, Number.MAX_SAFE_INTEGER);
  uint(6, r.cache_ttl_ms, TWO_32 - 1);
  bool(7, r.would_deny);
  str(8, r.would_deny_rule_id);
  const ap = r.allow_private;
  if (ap !== undefined && ap !== null) {
    if (!Array.isArray(ap)) throw UNSUPPORTED;
    for (const cidr of ap) {
      // an empty entry of a repeated field is still an entry
      if (cidr === '') {
        tag(9, 2);
        varint(0);
      } else str(9, cidr);
    }
  }
  bool(10, r.cache_hit);
  if (frozen) frozenResponses.set(r, Buffer.from(out.subarray(start, pos)));
}

function writeStreamRequest(m: DecideStreamRequest, entry: boolean): void {
  uint(1, m.request_id, Number.MAX_SAFE_INTEGER);
  const r = m.request;
  if (r !== undefined && r !== null) {
    if (typeof r !== 'object') throw UNSUPPORTED;
    sub(2, () => writeDecideRequest(r));
  }
  const b = m.batch;
  if (b !== undefined && b !== null && b.length > 0) {
    if (entry || !Array.isArray(b)) throw UNSUPPORTED;
    for (const e of b) sub(3, () => writeStreamRequest(e, true));
  }
}

function writeStreamResponse(m: DecideStreamResponse, entry: boolean): void {
  uint(1, m.request_id, Number.MAX_SAFE_INTEGER);
  const r = m.response;
  if (r !== undefined && r !== null) {
    if (typeof r !== 'object') throw UNSUPPORTED;
    sub(2, () => writeDecideResponse(r));
  }
  str(3, m.error);
  const b = m.batch;
  if (b !== undefined && b !== null && b.length > 0) {
    if (entry || !Array.isArray(b)) throw UNSUPPORTED;
    for (const e of b) sub(4, () => writeStreamResponse(e, true));
  }
}

/** Runs a writer over the scratch buffer; undefined when a value needs the reference encoder. */
function encode<T>(write: (m: T) => void, m: T): Buffer | undefined {
  if (m === null || typeof m !== 'object') return undefined;
  pos = 0;
  try {
    write(m);
  } catch (err) {
    if (err === UNSUPPORTED) return undefined;
    throw err;
  }
  const message = Buffer.from(out.subarray(0, pos));
  if (out.length > SCRATCH_KEEP_BYTES) out = Buffer.allocUnsafe(SCRATCH_BYTES);
  return message;
}

export const encodeDecideRequest = (m: DecideRequest): Buffer | undefined => encode(writeDecideRequest, m);
export const encodeDecideResponse = (m: DecideResponse): Buffer | undefined => encode(writeDecideResponse, m);
export const encodeDecideStreamRequest = (m: DecideStreamRequest): Buffer | undefined => encode((x: DecideStreamRequest) => writeStreamRequest(x, false), m);
export const encodeDecideStreamResponse = (m: DecideStreamResponse): Buffer | undefined => encode((x: DecideStreamResponse) => writeStreamResponse(x, false), m);

// ---- decoding -------------------------------------------------------------------------------

/** A cursor over one message's bytes; every read is bounds-checked against `end`. */
class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
    readonly what: string,
  ) {
    this.pos = start;
  }

  fail(why: string): never {
    throw new DecideCodecError(`malformed ${this.what}: ${why} at byte ${this.pos}`);
  }

  varint(): number {
    const buf = this.buf;
    let p = this.pos;
    if (p >= this.end) this.fail('truncated varint');
    let b = buf[p++] as number;
    if (b < 0x80) {
      this.pos = p;
      return b;
    }
    let v = b & 0x7f;
    let scale = 0x80;
    for (let i = 1; ; i++) {
      if (i >= 10) this.fail('varint longer than 10 bytes');
      if (p >= this.end) this.fail('truncated varint');
      b = buf[p++] as number;
      v += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
    }
    this.pos = p;
    return v;
  }

  /** protobufjs's uint32: the low 32 bits of the varint */
  uint32(): number {
    const v = this.varint();
    return v < TWO_32 ? v : v % TWO_32;
  }

  bool(): boolean {
    return this.uint32() !== 0;
  }

  /** the bounds [start, end) of a length-delimited field's bytes */
  bytes(): number {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) this.fail(`length ${len} runs past the end`);
    this.pos = start + len;
    return start;
  }

  string(): string {
    const start = this.bytes();
    const end = this.pos;
    if (start === end) return '';
    const buf = this.buf;
    // short ASCII (names, ids, codes): no native call
    if (end - start <= 32) {
      let s = '';
      for (let i = start; i < end; i++) {
        const c = buf[i] as number;
        if (c >= 0x80) return buf.toString('utf8', start, end);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return buf.toString('utf8', start, end);
  }

  /** a field's tag: [field number, wire type] packed as field * 8 + wire */
  tag(): number {
    const t = this.varint();
    if (t < 8 || t >= TWO_32) this.fail(`invalid tag ${t}`);
    return t;
  }

  skip(t: number): void {
    switch (t & 7) {
      case 0:
        this.varint();
        return;
      case 1:
        if (this.end - this.pos < 8) this.fail('truncated fixed64');
        this.pos += 8;
        return;
      case 2:
        this.bytes();
        return;
      case 5:
        if (this.end - this.pos < 4) this.fail('truncated fixed32');
        this.pos += 4;
        return;
      default:
        this.fail(`unsupported wire type ${t & 7} (field ${Math.floor(t / 8)})`);
    }
  }

  /** refuses a known field sent with another wire type */
  expect(t: number, wire: number): void {
    if ((t & 7) !== wire) this.fail(`field ${Math.floor(t / 8)} has wire type ${t & 7}, expected ${wire}`);
  }
}

function readDecideRequest(r: Reader): DecideRequest__Output {
  const m: DecideRequest__Output = { sni: '', connect_host: '', port: 0, source_ip: '', protocol: '', ech: false, ech_grease: false, node_id: '', listener: '', flow_id: '', no_name_reason: '', traceparent: '' };
  while (r.pos < r.end) {
    const t = r.tag();
    switch (t >>> 3) {
      case 1:
        r.expect(t, 2);
        m.sni = r.string();
        break;
      case 2:
        r.expect(t, 2);
        m.connect_host = r.string();
        break;
      case 3:
        r.expect(t, 0);
        m.port = r.uint32();
        break;
      case 4:
        r.expect(t, 2);
        m.source_ip = r.string();
        break;
      case 5:
        r.expect(t, 2);
        m.protocol = r.string();
        break;
      case 6:
        r.expect(t, 0);
        m.ech = r.bool();
        break;
      case 7:
        r.expect(t, 0);
        m.ech_grease = r.bool();
        break;
      case 8:
        r.expect(t, 2);
        m.node_id = r.string();
        break;
      case 9:
        r.expect(t, 2);
        m.listener = r.string();
        break;
      case 10:
        r.expect(t, 2);
        m.flow_id = r.string();
        break;
      case 11:
        r.expect(t, 2);
        m.no_name_reason = r.string();
        break;
      case 12:
        r.expect(t, 2);
        m.traceparent = r.string();
        break;
      default:
        r.skip(t);
    }
  }
  return m;
}

function readDecideResponse(r: Reader): DecideResponse__Output {
  const m: DecideResponse__Output = { verdict: 'VERDICT_UNSPECIFIED', rule_id: '', reason: '', detail: '', policy_version: 0, cache_ttl_ms: 0, would_deny: false, would_deny_rule_id: '', allow_private: [], cache_hit: false };
  while (r.pos < r.end) {
    const t = r.tag();
    switch (t >>> 3) {
      case 1: {
        r.expect(t, 0);
        // protobufjs reads an enum as int32; an unknown number stays a number
        const n = r.uint32() | 0;
        m.verdict = (VERDICT_NAME[n] ?? n) as DecideResponse__Output['verdict'];
        break;
      }
      case 2:
        r.expect(t, 2);
        m.rule_id = r.string();
        break;
      case 3:
        r.expect(t, 2);
        m.reason = r.string();
        break;
      case 4:
        r.expect(t, 2);
        m.detail = r.string();
        break;
      case 5:
        r.expect(t, 0);
        m.policy_version = r.varint();
        break;
      case 6:
        r.expect(t, 0);
        m.cache_ttl_ms = r.uint32();
        break;
      case 7:
        r.expect(t, 0);
        m.would_deny = r.bool();
        break;
      case 8:
        r.expect(t, 2);
        m.would_deny_rule_id = r.string();
        break;
      case 9:
        r.expect(t, 2);
        m.allow_private.push(r.string());
        break;
      case 10:
        r.expect(t, 0);
        m.cache_hit = r.bool();
        break;
      default:
        r.skip(t);
    }
  }
  return m;
}

/** A sub-message's reader over the bytes of the length-delimited field at the cursor. */
function inner(r: Reader, what: string): Reader {
  const start = r.bytes();
  return new Reader(r.buf, start, r.pos, what);
}

/** An entry's batch, always empty (the decoder refuses a non-empty one): one shared frozen array. */
const NO_BATCH: never[] = Object.freeze([]) as unknown as never[];

function readStreamRequest(r: Reader, entry: boolean): DecideStreamRequest__Output {
  const m: DecideStreamRequest__Output = { request_id: 0, request: null, batch: entry ? NO_BATCH : [] };
  while (r.pos < r.end) {
    const t = r.tag();
    switch (t >>> 3) {
      case 1:
        r.expect(t, 0);
        m.request_id = r.varint();
        break;
      case 2:
        r.expect(t, 2);
        m.request = readDecideRequest(inner(r, 'DecideRequest'));
        break;
      case 3:
        r.expect(t, 2);
        if (entry) r.fail('a batch entry carries a batch of its own');
        m.batch.push(readStreamRequest(inner(r, 'DecideStreamRequest batch entry'), true));
        break;
      default:
        r.skip(t);
    }
  }
  return m;
}

/**
 * The last few distinct DecideResponse encodings a stream delivered, with their decoded value:
 * a profile yields few distinct verdicts (they carry no name), so an edge receives the same
 * bytes over and over. Values are frozen and shared between answers.
 */
const recentResponses: { bytes: Buffer; value: DecideResponse__Output }[] = [];
const RECENT_RESPONSES = 8;

function readSharedResponse(r: Reader): DecideResponse__Output {
  const start = r.bytes();
  const end = r.pos;
  const len = end - start;
  const buf = r.buf;
  for (let i = 0; i < recentResponses.length; i++) {
    const c = recentResponses[i] as { bytes: Buffer; value: DecideResponse__Output };
    if (c.bytes.length === len && buf.compare(c.bytes, 0, len, start, end) === 0) return c.value;
  }
  const value = readDecideResponse(new Reader(buf, start, end, 'DecideResponse'));
  Object.freeze(value.allow_private);
  Object.freeze(value);
  if (recentResponses.length >= RECENT_RESPONSES) recentResponses.pop();
  recentResponses.unshift({ bytes: Buffer.from(buf.subarray(start, end)), value });
  return value;
}

function readStreamResponse(r: Reader, entry: boolean): DecideStreamResponse__Output {
  const m: DecideStreamResponse__Output = { request_id: 0, response: null, error: '', batch: entry ? NO_BATCH : [] };
  while (r.pos < r.end) {
    const t = r.tag();
    switch (t >>> 3) {
      case 1:
        r.expect(t, 0);
        m.request_id = r.varint();
        break;
      case 2:
        r.expect(t, 2);
        m.response = readSharedResponse(r);
        break;
      case 3:
        r.expect(t, 2);
        m.error = r.string();
        break;
      case 4:
        r.expect(t, 2);
        if (entry) r.fail('a batch entry carries a batch of its own');
        m.batch.push(readStreamResponse(inner(r, 'DecideStreamResponse batch entry'), true));
        break;
      default:
        r.skip(t);
    }
  }
  return m;
}

export const decodeDecideRequest = (buf: Buffer): DecideRequest__Output => readDecideRequest(new Reader(buf, 0, buf.length, 'DecideRequest'));
export const decodeDecideResponse = (buf: Buffer): DecideResponse__Output => readDecideResponse(new Reader(buf, 0, buf.length, 'DecideResponse'));
export const decodeDecideStreamRequest = (buf: Buffer): DecideStreamRequest__Output => readStreamRequest(new Reader(buf, 0, buf.length, 'DecideStreamRequest'), false);
/** Its `response` objects are frozen and shared by identical answers (see readSharedResponse). */
export const decodeDecideStreamResponse = (buf: Buffer): DecideStreamResponse__Output => readStreamResponse(new Reader(buf, 0, buf.length, 'DecideStreamResponse'), false);
