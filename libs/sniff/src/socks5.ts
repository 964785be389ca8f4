// Incremental readers of the SOCKS5 client messages (RFC 1928): the method greeting, then the CONNECT request.
import type { HostType } from './ip';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from './ip';
import type { NameProblem } from './names';
import { normalizeName } from './names';

export const SOCKS_VERSION = 0x05;
export const SOCKS_METHOD_NO_AUTH = 0x00;
export const SOCKS_METHOD_NONE_ACCEPTABLE = 0xff;

/** Reply codes (RFC 1928 §6) the caller sends back in the REP field. */
export const SOCKS_REPLY = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

export type SocksGreetingResult =
  | { kind: 'need-more' }
  /** bytes: greeting length; `method` is what to answer (0x00 no-auth, or 0xff: none acceptable, then close) */
  | { kind: 'greeting'; methods: number[]; method: typeof SOCKS_METHOD_NO_AUTH | typeof SOCKS_METHOD_NONE_ACCEPTABLE; bytes: number }
  /** first byte is not 5 (4 is SOCKS4/4a) */
  | { kind: 'not-socks5'; version: number }
  | { kind: 'invalid'; reason: 'methods-count' };

export type SocksRequestInvalid = 'version' | 'reserved' | 'domain-length' | 'host' | 'port';

export type SocksRequestResult =
  | { kind: 'need-more' }
  /** bytes: request length; anything after it is tunnel data */
  | { kind: 'request'; command: 'connect'; host: string; hostType: HostType; port: number; bytes: number }
  /** answer with `reply` and close: 0x07 command not supported (BIND, UDP ASSOCIATE...), 0x08 address type not supported */
  | { kind: 'unsupported'; what: 'command' | 'address-type'; value: number; reply: 0x07 | 0x08 }
  /** answer 0x01 general failure and close */
  | { kind: 'invalid'; reason: SocksRequestInvalid; reply: 0x01; problem?: NameProblem };

const GREETING_NEED_MORE: SocksGreetingResult = Object.freeze({ kind: 'need-more' });
const REQUEST_NEED_MORE: SocksRequestResult = Object.freeze({ kind: 'need-more' });

/** VER NMETHODS METHODS[NMETHODS]: at most 257 bytes, so the reader keeps them in a fixed buffer. */
export class SocksGreetingReader {
  private final: SocksGreetingResult | undefined;
  private readonly buf = new Uint8Array(257);
  private fill = 0;

  get result(): SocksGreetingResult {
    return this.final ?? GREETING_NEED_MORE;
  }

  push(chunk: Uint8Array): SocksGreetingResult {
    if (this.final) return this.final;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] ?? 0;
      const at = this.fill++;
      this.buf[at] = b;
      if (at === 0 && b !== SOCKS_VERSION) return (this.final = { kind: 'not-socks5', version: b });
      if (at === 1 && b === 0) return (this.final = { kind: 'invalid', reason: 'methods-count' });
      if (at >= 1 && at === 1 + (this.buf[1] ?? 0)) {
        const methods = Array.from(this.buf.subarray(2, at + 1));
        const method = methods.includes(SOCKS_METHOD_NO_AUTH) ? SOCKS_METHOD_NO_AUTH : SOCKS_METHOD_NONE_ACCEPTABLE;
        return (this.final = { kind: 'greeting', methods, method, bytes: at + 1 });
      }
    }
    return GREETING_NEED_MORE;
  }
}

/** VER CMD RSV ATYP DST.ADDR DST.PORT: at most 4 + 1 + 255 + 2 = 262 bytes. */
export class SocksRequestReader {
  private final: SocksRequestResult | undefined;
  private readonly buf = new Uint8Array(262);
  private fill = 0;
  /** total length once the address type (and a domain's length byte) is known */
  private need = 0;

  get result(): SocksRequestResult {
    return this.final ?? REQUEST_NEED_MORE;
  }

  push(chunk: Uint8Array): SocksRequestResult {
    if (this.final) return this.final;
    for (let i = 0; i < chunk.length; i++) {
      const r = this.byte(chunk[i] ?? 0);
      if (r) return (this.final = r);
    }
    return REQUEST_NEED_MORE;
  }

  private byte(b: number): SocksRequestResult | undefined {
    const at = this.fill++;
    this.buf[at] = b;
    switch (at) {
      case 0:
        return b === SOCKS_VERSION ? undefined : invalid('version');
      case 1:
        return b === 0x01 ? undefined : { kind: 'unsupported', what: 'command', value: b, reply: 0x07 };
      case 2:
        return b === 0x00 ? undefined : invalid('reserved');
      case 3:
        if (b === 0x01) this.need = 4 + 4 + 2;
        else if (b === 0x04) this.need = 4 + 16 + 2;
        else if (b !== 0x03) return { kind: 'unsupported', what: 'address-type', value: b, reply: 0x08 };
        return undefined;
      case 4:
        if (this.buf[3] === 0x03) {
          if (b === 0) return invalid('domain-length');
          this.need = 4 + 1 + b + 2;
        }
        break;
    }
    return at + 1 === this.need ? this.finish() : undefined;
  }

  private finish(): SocksRequestResult {
    const b = this.buf;
    const end = this.need;
    const port = ((b[end - 2] ?? 0) << 8) | (b[end - 1] ?? 0);
    if (port === 0) return invalid('port');
    const atyp = b[3];
    let host: string;
    let hostType: HostType;
    if (atyp === 0x01) {
      host = formatIpv4(b, 4);
      hostType = 'ipv4';
    } else if (atyp === 0x04) {
      host = formatIpv6(b, 4);
      hostType = 'ipv6';
    } else {
      const raw = Buffer.from(b.buffer, b.byteOffset + 5, end - 7).toString('latin1');
      // Some clients send an address as a "domain"; take it for what it is.
      const v4 = parseIpv4(raw);
      const v6 = v4 ? undefined : parseIpv6(raw.replace(/^\[(.*)\]$/, '$1'));
      if (v4) {
        host = raw;
        hostType = 'ipv4';
      } else if (v6) {
        host = formatIpv6(v6);
        hostType = 'ipv6';
      } else {
        const name = normalizeName(raw);
        if (!name.ok) return { kind: 'invalid', reason: 'host', reply: 0x01, problem: name.problem };
        host = name.name;
        hostType = 'name';
      }
    }
    return { kind: 'request', command: 'connect', host, hostType, port, bytes: end };
  }
}

function invalid(reason: SocksRequestInvalid): SocksRequestResult {
  return { kind: 'invalid', reason, reply: 0x01 };
}

export function readSocksGreeting(bytes: Uint8Array): SocksGreetingResult {
  return new SocksGreetingReader().push(bytes);
}

export function readSocksRequest(bytes: Uint8Array): SocksRequestResult {
  return new SocksRequestReader().push(bytes);
}

/** The server's reply to a request: VER REP RSV ATYP=1 BND.ADDR=0.0.0.0 BND.PORT=0 (what most proxies send). */
export function socksReply(reply: number): Buffer {
  return Buffer.from([SOCKS_VERSION, reply & 0xff, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}
