// The sniff stage for every way in: an optional PROXY protocol header, then what the listener's
// mode reads (a TLS ClientHello, an HTTP CONNECT request, a SOCKS5 handshake). Each reader is fed
// the client's bytes as they arrive, within one deadline; every outcome is a value.
import type { Socket } from 'node:net';
import {
  ClientHelloReader,
  ConnectRequestReader,
  detectProtocol,
  MAX_CLIENT_HELLO_BYTES,
  ProxyHeaderReader,
  PROXY_V2_SIGNATURE,
  SOCKS_METHOD_NONE_ACCEPTABLE,
  SOCKS_REPLY,
  SocksGreetingReader,
  SocksRequestReader,
  socksReply,
} from '@portcullis/sniff';
import type { HelloResult } from '@portcullis/sniff';
import type { FlowStart } from '@portcullis/flow-events';
import type { ListenerConfig } from '@portcullis/platform';
import type { ConnectFailure } from './connect';
import type { SniffOutcome } from './observe';
import { originalDestination } from './original-dst';
import { cidrList } from './ssrf';

export type Protocol = FlowStart['protocol'];

/** TLS alert record: fatal access_denied (49). */
export const ACCESS_DENIED_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31]);
/** TLS alert record: fatal decode_error (50), for hellos we cannot parse. */
export const DECODE_ERROR_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);
/** TLS alert record: fatal internal_error (80), when an allowed destination cannot be reached. */
export const INTERNAL_ERROR_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50]);
const NOTHING = Buffer.alloc(0);

/** What to send the client for each outcome after the sniff stage. */
export interface Replies {
  denied(reason: string, detail: string): Buffer;
  unreachable(reason: ConnectFailure, detail: string): Buffer;
  /** CONNECT 200 / SOCKS success, sent once the upstream is connected */
  established?: Buffer;
}

export interface Intake {
  sni: string;
  connectHost: string;
  /** destination port */
  port: number;
  protocol: Protocol;
  ech: boolean;
  echGrease: boolean;
  /** why no name was learned ('' when one was) */
  noNameReason: string;
  outcome: SniffOutcome | 'client_closed' | 'refused' | 'request';
  /** a refusal before any decision: the reason, what to send, and why in words */
  refusal?: { reason: string; reply: Buffer; detail: string };
  /** client address from a trusted PROXY header (else the socket's) */
  source?: { address: string; port: number };
  /** transparent mode: where the client was going before the redirect */
  originalDst?: { address: string; port: number };
  /** bytes to forward to the upstream first, unchanged */
  forward: Buffer[];
  replies: Replies;
  /** CONNECT/SOCKS: a ClientHello later sent through the tunnel is checked against the name */
  tunnel: boolean;
}

type Read<R> = { r: R; data: Buffer } | { r: { kind: 'timeout' | 'closed' }; data: Buffer };

/**
 * Feeds the client's bytes (after `initial`) to `push` until it answers something other than
 * need-more, the deadline passes, or the client closes. `data` is every byte read, initial included.
 */
export function readUntil<R extends { kind: string }>(client: Socket, initial: Buffer, push: (chunk: Buffer) => R, deadline: number): Promise<Read<R>> {
  const chunks: Buffer[] = initial.length ? [initial] : [];
  if (initial.length) {
    const r = push(initial);
    if (r.kind !== 'need-more') return Promise.resolve({ r, data: initial });
  }
  return new Promise((resolve) => {
    let done = false;
    const finish = (out: Read<R>['r']): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client.off('data', onData);
      client.off('end', onEnd);
      client.off('close', onEnd);
      client.pause();
      resolve({ r: out, data: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks) } as Read<R>);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      const r = push(chunk);
      if (r.kind !== 'need-more') finish(r);
    };
    const onEnd = (): void => finish({ kind: 'closed' });
    const timer = setTimeout(() => finish({ kind: 'timeout' }), Math.max(0, deadline - Date.now()));
    client.on('data', onData);
    client.once('end', onEnd);
    client.once('close', onEnd);
    client.resume();
  });
}

const tlsReplies: Replies = {
  denied: () => ACCESS_DENIED_ALERT,
  unreachable: (reason) => (reason === 'private-destination' || reason === 'sni-mismatch' ? ACCESS_DENIED_ALERT : INTERNAL_ERROR_ALERT),
};
const closeReplies: Replies = { denied: () => NOTHING, unreachable: () => NOTHING };

function base(partial: Partial<Intake> & Pick<Intake, 'outcome' | 'protocol'>): Intake {
  return { sni: '', connectHost: '', port: 0, ech: false, echGrease: false, noNameReason: '', forward: [], replies: closeReplies, tunnel: false, ...partial };
}

function refused(reason: string, detail: string, reply: Buffer, protocol: Protocol = 'unknown', outcome: Intake['outcome'] = 'refused'): Intake {
  return base({ outcome, protocol, noNameReason: reason, refusal: { reason, reply, detail } });
}

// ---------------------------------------------------------------- PROXY protocol

export interface ProxyStage {
  source?: { address: string; port: number };
  rest: Buffer;
  refusal?: Intake;
}

const V1_SIGNATURE = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20]; // "PROXY "

/** Do these first bytes start a PROXY header (v1 "PROXY " or the v2 signature)? */
function proxySignature(seen: number[]): { kind: 'proxy' | 'not-proxy' | 'need-more' } {
  const matches = (sig: ArrayLike<number>): boolean => seen.every((b, i) => i >= sig.length || b === sig[i]);
  const v1 = matches(V1_SIGNATURE);
  const v2 = matches(PROXY_V2_SIGNATURE);
  if ((v1 && seen.length >= V1_SIGNATURE.length) || (v2 && seen.length >= PROXY_V2_SIGNATURE.length)) return { kind: 'proxy' };
  return v1 || v2 ? { kind: 'need-more' } : { kind: 'not-proxy' };
}

const trustCache = new WeakMap<ListenerConfig, ReturnType<typeof cidrList>>();

function trusted(listener: ListenerConfig, address: string): boolean {
  let list = trustCache.get(listener);
  if (!list) {
    list = cidrList(listener.trustedProxies);
    trustCache.set(listener, list);
  }
  const plain = address.startsWith('::ffff:') ? address.slice(7) : address;
  return list.check(plain, plain.includes(':') ? 'ipv6' : 'ipv4');
}

/**
 * With `proxyProtocol` set, trusted peers must start with a PROXY header (its client address
 * replaces the peer's); anyone else who sends one is refused, so clients cannot forge their address.
 */
export async function readProxyStage(client: Socket, listener: ListenerConfig, deadline: number): Promise<ProxyStage> {
  if (!listener.proxyProtocol) return { rest: NOTHING };
  const fromTrusted = trusted(listener, client.remoteAddress ?? '');
  if (!fromTrusted) {
    // Only look for a PROXY signature, never read a header from an untrusted peer: it is refused
    // as soon as its first bytes match one.
    const seen: number[] = [];
    const { r, data } = await readUntil(
      client,
      NOTHING,
      (c) => {
        for (const b of c) {
          if (seen.length >= PROXY_V2_SIGNATURE.length) break;
          seen.push(b);
        }
        return proxySignature(seen);
      },
      deadline,
    );
    if (r.kind === 'proxy') return { rest: NOTHING, refusal: refused('untrusted-proxy-header', `a PROXY header from ${client.remoteAddress ?? '?'}, which is not in trustedProxies`, NOTHING) };
    return { rest: data };
  }
  const reader = new ProxyHeaderReader();
  const { r, data } = await readUntil(client, NOTHING, (c) => reader.push(c), deadline);
  if (r.kind === 'timeout' || r.kind === 'closed') {
    // nothing (or too little) arrived: let the mode's own stage judge the silence
    return { rest: data };
  }
  if (r.kind === 'not-proxy') return { rest: NOTHING, refusal: refused('proxy-header-missing', 'a trusted proxy sent no PROXY header', NOTHING) };
  if (r.kind === 'invalid') return { rest: NOTHING, refusal: refused('proxy-header-invalid', `malformed PROXY header: ${r.reason}`, NOTHING) };
  if (r.kind !== 'header') return { rest: data };
  if (listener.proxyProtocol !== 'any' && `v${r.version}` !== listener.proxyProtocol) {
    return { rest: NOTHING, refusal: refused('proxy-header-invalid', `PROXY v${r.version} header where ${listener.proxyProtocol} is configured`, NOTHING) };
  }
  const rest = data.subarray(r.bytes);
  // LOCAL (a health check by the proxy itself) and UNKNOWN keep the connection's own address.
  return r.local || !r.src ? { rest } : { rest, source: { address: r.src.address, port: r.src.port } };
}

// ---------------------------------------------------------------- sni

/** The intake of a hello the relay read itself (the express lane): a name, TLS, no bytes held here. */
export function namedHello(sni: string, ech: boolean, port: number): Intake {
  return { sni, connectHost: '', port, protocol: 'tls', ech, echGrease: ech, noNameReason: '', outcome: 'sni_found', forward: [], replies: tlsReplies, tunnel: false };
}

/** What a complete (or abandoned) ClientHello tells us. */
export function fromHello(r: HelloResult | { kind: 'timeout' | 'closed' }, data: Buffer): Intake {
  switch (r.kind) {
    case 'hello': {
      const h = r.hello;
      const sni = h.sni.kind === 'name' ? h.sni.name : '';
      // GREASE ECH and real ECH look alike on the wire (RFC 9849 §6.2). With a readable SNI the
      // connection goes to that name's servers, so the name decides (echGrease); without one the
      // profile's `ech` action does. See docs/policy.md.
      // one literal, not base()'s spread: this is every TLS flow's intake
      return { sni, connectHost: '', port: 0, protocol: 'tls', ech: h.ech.present, echGrease: h.ech.present && sni !== '', noNameReason: sni ? '' : h.sni.kind === 'none' ? 'no-sni' : `sni-${h.sni.kind}`, outcome: sni ? 'sni_found' : 'sni_not_found', forward: [data], replies: tlsReplies, tunnel: false };
    }
    case 'not-tls': {
      const p = detectProtocol(data);
      return base({ protocol: p === 'need-more' ? 'unknown' : p, noNameReason: 'not-tls', outcome: 'not_tls', forward: [data] });
    }
    case 'too-large':
      return refused('hello-too-large', `ClientHello larger than ${MAX_CLIENT_HELLO_BYTES} bytes`, DECODE_ERROR_ALERT, 'tls', 'too_large');
    case 'invalid':
      return refused('invalid-hello', `malformed ClientHello: ${r.reason}`, DECODE_ERROR_ALERT, 'tls', 'invalid');
    case 'closed':
      return data.length ? refused('truncated-hello', 'the client closed before its ClientHello ended', NOTHING, 'tls', 'invalid') : refused('client-closed', 'the client closed without sending anything', NOTHING, 'unknown', 'client_closed');
    case 'timeout':
    default:
      // Silence is an answer too (server-speaks-first protocols): decide on what we know.
      return base({ protocol: data.length ? 'tls' : 'unknown', noNameReason: data.length ? 'sniff-timeout' : 'client-silent', outcome: 'timeout', forward: [data] });
  }
}

async function intakeSni(client: Socket, rest: Buffer, deadline: number): Promise<Intake> {
  const reader = new ClientHelloReader();
  const { r, data } = await readUntil<HelloResult>(client, rest, (c) => reader.push(c), deadline);
  return fromHello(r, data);
}

// ---------------------------------------------------------------- http-connect

function http(status: string, reason: string, detail: string): Buffer {
  const body = `portcullis: ${detail}\n`;
  return Buffer.from(`HTTP/1.1 ${status}\r\nPortcullis-Reason: ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

const connectReplies: Replies = {
  denied: (reason, detail) => http('403 Forbidden', reason, detail),
  unreachable: (reason, detail) => (reason === 'private-destination' ? http('403 Forbidden', reason, detail) : reason === 'connect-timeout' ? http('504 Gateway Timeout', reason, detail) : http('502 Bad Gateway', reason, detail)),
  established: Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n'),
};

async function intakeConnect(client: Socket, rest: Buffer, deadline: number): Promise<Intake> {
  const reader = new ConnectRequestReader();
  const { r, data } = await readUntil(client, rest, (c) => reader.push(c), deadline);
  switch (r.kind) {
    case 'request':
      return base({ connectHost: r.host, port: r.port, protocol: 'unknown', outcome: 'request', forward: r.headBytes < data.length ? [data.subarray(r.headBytes)] : [], replies: connectReplies, tunnel: true, noNameReason: '' });
    case 'not-connect':
      return refused('method-not-allowed', `only CONNECT is served here, not ${r.method}`, http('405 Method Not Allowed', 'method-not-allowed', `only CONNECT is served here, not ${r.method}`), 'http');
    case 'bad-request':
      return refused('bad-request', `malformed CONNECT request: ${r.reason}`, http('400 Bad Request', 'bad-request', `malformed CONNECT request: ${r.reason}`), 'http');
    case 'too-large':
      return refused('request-too-large', 'CONNECT request head too large', http('400 Bad Request', 'request-too-large', 'request head too large'), 'http');
    case 'closed':
      return refused('client-closed', 'the client closed before its request ended', NOTHING, 'unknown', 'client_closed');
    case 'timeout':
    default:
      return refused('client-silent', 'no complete CONNECT request in time', http('408 Request Timeout', 'client-silent', 'no complete CONNECT request in time'), 'unknown', 'timeout');
  }
}

// ---------------------------------------------------------------- socks5

const socksReplies: Replies = {
  denied: () => socksReply(SOCKS_REPLY.notAllowed),
  unreachable: (reason) => socksReply(reason === 'private-destination' ? SOCKS_REPLY.notAllowed : reason === 'connect-refused' ? SOCKS_REPLY.connectionRefused : SOCKS_REPLY.hostUnreachable),
  established: socksReply(SOCKS_REPLY.succeeded),
};

async function intakeSocks(client: Socket, rest: Buffer, deadline: number): Promise<Intake> {
  const greeting = new SocksGreetingReader();
  const g = await readUntil(client, rest, (c) => greeting.push(c), deadline);
  if (g.r.kind === 'timeout') return refused('client-silent', 'no SOCKS greeting in time', NOTHING, 'unknown', 'timeout');
  if (g.r.kind === 'closed') return refused('client-closed', 'the client closed during the SOCKS greeting', NOTHING, 'unknown', 'client_closed');
  if (g.r.kind === 'not-socks5') return refused('not-socks5', `SOCKS version ${g.r.version} is not served here`, NOTHING);
  if (g.r.kind !== 'greeting') return refused('socks-invalid', 'malformed SOCKS greeting', NOTHING);
  if (g.r.method === SOCKS_METHOD_NONE_ACCEPTABLE) return refused('socks-auth-unsupported', 'the client offered no method we accept (no-auth only)', Buffer.from([0x05, 0xff]));
  client.write(Buffer.from([0x05, 0x00]));
  const request = new SocksRequestReader();
  const q = await readUntil(client, g.data.subarray(g.r.bytes), (c) => request.push(c), deadline);
  switch (q.r.kind) {
    case 'request':
      return base({ connectHost: q.r.host, port: q.r.port, protocol: 'unknown', outcome: 'request', forward: q.r.bytes < q.data.length ? [q.data.subarray(q.r.bytes)] : [], replies: socksReplies, tunnel: true });
    case 'unsupported':
      return refused(q.r.what === 'command' ? 'socks-command-unsupported' : 'socks-address-unsupported', `SOCKS ${q.r.what} ${q.r.value} is not supported`, socksReply(q.r.reply));
    case 'invalid':
      return refused('socks-invalid', `malformed SOCKS request: ${q.r.reason}`, socksReply(q.r.reply));
    case 'closed':
      return refused('client-closed', 'the client closed during the SOCKS request', NOTHING, 'unknown', 'client_closed');
    case 'timeout':
    default:
      return refused('client-silent', 'no SOCKS request in time', socksReply(SOCKS_REPLY.generalFailure), 'unknown', 'timeout');
  }
}

/** The whole sniff stage of one connection. */
export async function intake(client: Socket, listener: ListenerConfig, timeoutMs: number): Promise<Intake> {
  const deadline = Date.now() + timeoutMs;
  const proxy = await readProxyStage(client, listener, deadline);
  if (proxy.refusal) return proxy.refusal;
  const learned = listener.mode === 'http-connect' ? await intakeConnect(client, proxy.rest, deadline) : listener.mode === 'socks5' ? await intakeSocks(client, proxy.rest, deadline) : await intakeSni(client, proxy.rest, deadline);
  if (listener.mode === 'sni') learned.port = listener.upstreamPort;
  if (listener.mode === 'transparent') {
    const dst = originalDestination(client);
    if (!dst) return refused('not-redirected', 'a transparent listener got a connection that iptables did not redirect', NOTHING, learned.protocol);
    learned.originalDst = dst;
    learned.port = dst.port;
  }
  if (proxy.source) learned.source = proxy.source;
  return learned;
}
