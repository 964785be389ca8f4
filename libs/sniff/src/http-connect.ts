// Incremental reader of an HTTP/1.x CONNECT request head ("CONNECT host:port HTTP/1.1" ... CRLF CRLF).
import type { HostType } from './ip';
import { formatIpv6, parseIpv4, parseIpv6 } from './ip';
import type { NameProblem } from './names';
import { normalizeName } from './names';

/** Most bytes the request head may take, final CRLF CRLF included. */
export const MAX_CONNECT_HEAD_BYTES = 8 * 1024;
const MAX_METHOD = 32;

export type ConnectBadReason =
  | 'method' // a byte that cannot be in a method token, or a method longer than 32
  | 'bare-cr' // CR not followed by LF
  | 'bare-lf' // LF without CR
  | 'request-line' // not "METHOD SP target SP version"
  | 'version' // not HTTP/1.0 or HTTP/1.1
  | 'target' // not host:port
  | 'host' // the host is neither a valid name nor an IP literal
  | 'port' // not 1..65535
  | 'header' // a header line without a valid name and colon
  | 'obs-fold'; // a header continued on the next line (obsolete folding)

export interface ConnectRequest {
  /** a name in canonical form (normalizeName), a dotted quad, or an IPv6 address in RFC 5952 form (no brackets) */
  host: string;
  hostType: HostType;
  port: number;
  version: '1.0' | '1.1';
  /** header fields in order, names lowercased, values without surrounding whitespace */
  headers: [name: string, value: string][];
}

export type ConnectResult =
  | { kind: 'need-more' }
  /** headBytes: bytes of the head, CRLF CRLF included; anything after them is tunnel data */
  | ({ kind: 'request'; headBytes: number } & ConnectRequest)
  | { kind: 'bad-request'; reason: ConnectBadReason; problem?: NameProblem }
  /** a well-formed method other than CONNECT (the caller may answer 405 or treat it as plain HTTP) */
  | { kind: 'not-connect'; method: string }
  | { kind: 'too-large' };

const NEED_MORE: ConnectResult = Object.freeze({ kind: 'need-more' });
const TOO_LARGE: ConnectResult = Object.freeze({ kind: 'too-large' });

/** RFC 9110 tchar */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;

const badRequest = (reason: ConnectBadReason, problem?: NameProblem): ConnectResult => (problem ? { kind: 'bad-request', reason, problem } : { kind: 'bad-request', reason });

/**
 * Feed it the client's bytes as they arrive. The method is judged as soon as its space arrives (so a GET is
 * told apart without waiting for the whole head), line endings byte by byte, the rest once CRLF CRLF is in.
 * The head is copied into one buffer of at most MAX_CONNECT_HEAD_BYTES; work is linear in the bytes pushed.
 */
export class ConnectRequestReader {
  private final: ConnectResult | undefined;
  private readonly head = Buffer.alloc(MAX_CONNECT_HEAD_BYTES);
  private fill = 0;
  private inMethod = true;
  private lineStart = 0;

  get result(): ConnectResult {
    return this.final ?? NEED_MORE;
  }

  push(chunk: Uint8Array): ConnectResult {
    if (this.final) return this.final;
    for (let i = 0; i < chunk.length; i++) {
      const r = this.byte(chunk[i] ?? 0);
      if (r) return (this.final = r);
    }
    return NEED_MORE;
  }

  private byte(b: number): ConnectResult | undefined {
    const at = this.fill;
    if (at >= MAX_CONNECT_HEAD_BYTES) return TOO_LARGE;
    this.head[at] = b;
    this.fill = at + 1;
    const prev = at > 0 ? this.head[at - 1] : undefined;
    if (prev === CR && b !== LF) return badRequest('bare-cr');
    if (this.inMethod) {
      if (b === SP) {
        if (at === 0) return badRequest('method');
        this.inMethod = false;
        const method = this.head.toString('latin1', 0, at);
        return method === 'CONNECT' ? undefined : { kind: 'not-connect', method };
      }
      if (!TCHAR[b] || at >= MAX_METHOD) return badRequest('method');
      return undefined;
    }
    if (b === LF) {
      if (prev !== CR) return badRequest('bare-lf');
      const lineLength = at - 1 - this.lineStart;
      if (lineLength === 0) return parseHead(this.head.subarray(0, at + 1));
      this.lineStart = at + 1;
    }
    // The head may end exactly at the cap; a byte that fills the cap without ending it decides too-large.
    if (this.fill === MAX_CONNECT_HEAD_BYTES) return TOO_LARGE;
    return undefined;
  }
}

export function readConnectRequest(bytes: Uint8Array): ConnectResult {
  return new ConnectRequestReader().push(bytes);
}

/** The whole head, CRLF CRLF included; every line already ends in CRLF and has no bare CR or LF. */
function parseHead(head: Buffer): ConnectResult {
  const text = head.toString('latin1');
  const lines = text.slice(0, -4).split('\r\n');
  const requestLine = lines[0] ?? '';
  const parts = requestLine.split(' ');
  if (parts.length !== 3) return badRequest('request-line');
  const [, target = '', versionText = ''] = parts;
  const version = versionText === 'HTTP/1.1' ? '1.1' : versionText === 'HTTP/1.0' ? '1.0' : undefined;
  if (!version) return badRequest('version');
  const authority = parseAuthority(target);
  if ('reason' in authority) return badRequest(authority.reason, authority.problem);
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    if (line.startsWith(' ') || line.startsWith('\t')) return badRequest('obs-fold');
    const colon = line.indexOf(':');
    if (colon <= 0) return badRequest('header');
    const name = line.slice(0, colon);
    for (let i = 0; i < name.length; i++) if (!TCHAR[name.charCodeAt(i)]) return badRequest('header');
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) return badRequest('header');
    }
    headers.push([name.toLowerCase(), value]);
  }
  return { kind: 'request', headBytes: head.length, ...authority, version, headers };
}

type Authority = { host: string; hostType: HostType; port: number } | { reason: ConnectBadReason; problem?: NameProblem };

/** RFC 9110 §9.3.6: authority-form, host ":" port, both required; IPv6 in brackets. */
export function parseAuthority(target: string): Authority {
  let hostText: string;
  let portText: string;
  if (target.startsWith('[')) {
    const close = target.indexOf(']');
    if (close < 0 || target[close + 1] !== ':') return { reason: 'target' };
    hostText = target.slice(1, close);
    portText = target.slice(close + 2);
    const v6 = parseIpv6(hostText);
    if (!v6) return { reason: 'host', problem: 'ip-literal' };
    const port = parsePort(portText);
    return port === undefined ? { reason: 'port' } : { host: formatIpv6(v6), hostType: 'ipv6', port };
  }
  const colon = target.lastIndexOf(':');
  if (colon < 0) return { reason: 'target' };
  hostText = target.slice(0, colon);
  portText = target.slice(colon + 1);
  if (hostText.includes(':')) return { reason: 'target' }; // an unbracketed IPv6 address
  const port = parsePort(portText);
  if (port === undefined) return { reason: 'port' };
  if (parseIpv4(hostText)) return { host: hostText, hostType: 'ipv4', port };
  const name = normalizeName(hostText);
  if (!name.ok) return { reason: 'host', problem: name.problem };
  return { host: name.name, hostType: 'name', port };
}

function parsePort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const v = Number(text);
  return v >= 1 && v <= 65535 ? v : undefined;
}
