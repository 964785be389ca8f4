// The native data plane (native/relay): once a flow is decided and its upstream connected, both
// sockets' descriptors go to one relay thread per process (epoll, recv/send from one scratch
// buffer) and the Node sockets are closed. No JavaScript runs per chunk; a flow comes back to JS
// once, when it ends, with its byte counts and close reason. `edge.relay: node` keeps the
// JavaScript relay (flow.ts). CONNECT/SOCKS tunnels start in the JavaScript relay (their
// ClientHello check reads the client's first bytes after the decision) and are handed over once
// it passes.
import { availableParallelism, constants } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { findAddon, requireAddon } from './addon';

interface Addon {
  /** records: [id, a, b, code, errno, payload offset, payload length] each; payloads: the batch's payload bytes, back to back */
  start(done: (records: Float64Array, payloads: Buffer | undefined) => void, threaded: boolean): void;
  listen(host: string, port: number, backlog: number, sniffMs: number, fd?: number): [number, number];
  bindListen(host: string, port: number, backlog: number): [number, number];
  unlisten(listener: number): void;
  refuse(id: number, reply: Buffer | null, graceful: boolean): void;
  attach(id: number, upstreamFd: number, idleMs: number, downFirst: Buffer | null, flags: number): boolean;
  connect(id: number, address: string, port: number, timeoutMs: number, idleMs: number): boolean;
  adopt(clientFd: number, upstreamFd: number, id: number, idleMs: number, upFirst: Buffer | null, downFirst: Buffer | null, flags: number): boolean;
  killAll(reason: number): void;
  route(listener: number, peer: string, sni: string, ech: boolean, address: string, port: number, ttlMs: number, routeId: number, idleMs: number, timeoutMs: number): boolean;
  clearRoutes(): void;
  expressLimits(maxFlows: number, maxPerSource: number): void;
  /** (tests: test/support/hello-sni.ts) */
  helloSni(bytes: Buffer): [string, boolean] | null;
}

export interface RelayEnd {
  bytesUp: number;
  bytesDown: number;
  /** client-closed, upstream-closed, idle-timeout, client-error:CODE, upstream-error:CODE, shutdown */
  reason: string;
}

const ADDON = join('native', 'relay', 'build', 'Release', 'relay.node');
/** relay.c NOTIFY_WITHIN_MS: a report that is not urgent (an accept, a connect, an end) reaches JavaScript within this */
export const REPORTS_WITHIN_MS = 20;
const RECORD = 7;
const REASONS = ['', 'client-closed', 'upstream-closed', 'idle-timeout', 'client-error', 'upstream-error', 'shutdown'];
const SHUTDOWN = 6;
const EV_ACCEPTED = 100;
const EV_HELLO = 101;
const EV_FD_LIMIT = 102;
const EV_ACCEPT_ERROR = 103;
const EV_CONNECTED = 104;
const EV_EXPRESS = 105;
const HOW = ['complete', 'closed', 'timeout', 'full'] as const;
const NO_BYTES = Buffer.alloc(0);
const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

type Fd = { _handle?: { fd?: number } };
type Readable = { _readableState?: { ended?: boolean } };

const fdOf = (s: Socket): number => {
  const fd = (s as unknown as Fd)._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
};

/** Everything a paused socket has read and not yet handed on, and whether its end was read. */
function takeBuffered(s: Socket, first: readonly Buffer[]): { bytes: Buffer | null; ended: boolean } {
  const parts = [...first];
  for (let b = s.read() as Buffer | null; b !== null; b = s.read() as Buffer | null) parts.push(b);
  const ended = (s as unknown as Readable)._readableState?.ended === true;
  const bytes = parts.length === 0 ? null : parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  return { bytes: bytes && bytes.length > 0 ? bytes : null, ended };
}

let loaded: NativeRelay | undefined;
let loadError: string | undefined;

/** The process's native relay; undefined (with the reason in `nativeRelayError()`) when the addon is missing. */
export function nativeRelay(): NativeRelay | undefined {
  if (loaded || loadError) return loaded;
  const path = findAddon(ADDON);
  if (!path) {
    loadError = `${ADDON} was not built (npm ci builds it with g++ and Node's headers)`;
    return undefined;
  }
  try {
    loaded = new NativeRelay(requireAddon<Addon>(path), relayOnThread());
  } catch (err) {
    loadError = `${ADDON}: ${(err as Error).message}`;
  }
  return loaded;
}

/**
 * Where the relay runs: PORTCULLIS_RELAY_THREAD=1 its own thread, =0 Node's loop; unset, its own
 * thread when the machine has more than two CPUs. On Node's loop no flow costs a cross-thread
 * wake-up; on its own thread established flows do not wait while JavaScript works on new ones
 * (under a storm of new connections, p50 latency of established flows 1.3x lower there), which a
 * machine with cores to spare can afford. With the express lane the thread took 0.90-0.92x the
 * loop's CPU per new connection on the 2-vCPU bench machine (three A/Bs) but moved 0.78-0.91x its
 * bulk MB/s (three A/Bs), so two CPUs keep the loop.
 */
export function relayOnThread(env: NodeJS.ProcessEnv = process.env, cpus = availableParallelism()): boolean {
  const v = env['PORTCULLIS_RELAY_THREAD'];
  if (v === '1') return true;
  if (v === '0') return false;
  return cpus > 2;
}

/**
 * A listening socket for an edge cluster's workers to share (bindListen): opened by the primary,
 * which never accepts on it; undefined when the relay addon is missing (the workers then listen
 * through node:cluster). Throws as listen() would (EADDRINUSE...).
 */
export function bindSharedListener(host: string, port: number, backlog: number): { fd: number; port: number } | undefined {
  const path = findAddon(ADDON);
  if (!path) return undefined;
  let addon: Addon;
  try {
    addon = requireAddon<Addon>(path);
  } catch {
    return undefined;
  }
  const [fd, bound] = addon.bindListen(host, port, backlog);
  return { fd, port: bound };
}

export function nativeRelayError(): string | undefined {
  return loadError;
}

/** The client's first bytes as the relay thread read them, and why it stopped reading. */
export interface Sniffed {
  bytes: Buffer;
  /** complete: the TLS framing says the hello ended (or cannot be one); closed, timeout, full (64 KiB) */
  how: (typeof HOW)[number];
  /** the express lane took it: the thread matched this route (NativeRelay.route) and is connecting (bytes: none) */
  route?: number;
}

type ConnectOutcome = { ok: true } | { ok: false; code: string };

export interface NativeListenerEvents {
  accepted(client: NativeClient): void;
  /** out of descriptors: the thread accepted this client with its spare descriptor and closed it */
  fdLimit(address: string, port: number): void;
  acceptError(code: string): void;
}

/**
 * A client connection the relay thread accepted (native intake). It never becomes a Node socket:
 * its bytes stay in the thread, and JS answers with attach() (the upstream) or refuse().
 */
export class NativeClient {
  private sniffedBytes: Sniffed | undefined;
  private sniffWaiter: ((s: Sniffed) => void) | undefined;
  private endInfo: RelayEnd | undefined;
  private endWaiter: ((end: RelayEnd) => void) | undefined;
  private connectWaiter: ((r: ConnectOutcome) => void) | undefined;
  /** the outcome of a connect nobody waited for yet (the express lane's own) */
  private connectOutcome: ConnectOutcome | undefined;
  private answered = false;

  constructor(
    private readonly addon: Addon,
    readonly id: number,
    readonly remoteAddress: string,
    readonly remotePort: number,
    /** the relay's index of the listener that accepted it */
    readonly listener = -1,
  ) {}

  /** The thread has closed the client (its end report came). */
  get ended(): boolean {
    return this.endInfo !== undefined;
  }

  /** Runs once, with what the thread read (or that the express lane took it): at once if that is known already. */
  onSniffed(fn: (s: Sniffed) => void): void {
    if (this.sniffedBytes) fn(this.sniffedBytes);
    else this.sniffWaiter = fn;
  }

  /** Runs once, when the thread has closed the client: counts and reason (at once if it already has). */
  onEnd(fn: (end: RelayEnd) => void): void {
    if (this.endInfo) fn(this.endInfo);
    else this.endWaiter = fn;
  }

  /** graceful: the reply, a half-close, and the client's further bytes discarded until it closes (≤ 2 s); else closed at once. */
  refuse(reply: Buffer | null, graceful: boolean): void {
    if (this.answered || this.endInfo) return;
    this.answered = true;
    this.addon.refuse(this.id, reply && reply.length ? reply : null, graceful);
  }

  /** Closed at once, whatever it is doing (an express flow's upstream included). */
  kill(): void {
    if (this.endInfo) return;
    this.answered = true;
    this.addon.refuse(this.id, null, false);
  }

  /**
   * The upstream takes over: the thread sends it the sniffed bytes, then relays both ways (the
   * upstream's buffered bytes go to the client first) and the Node socket is closed. false:
   * nothing was taken (no descriptor left).
   */
  attach(upstream: Socket, idleMs: number): boolean {
    if (this.answered || this.endInfo) return false;
    const ufd = fdOf(upstream);
    if (ufd < 0 || upstream.writableLength > 0) return false;
    const down = takeBuffered(upstream, []);
    if (!this.addon.attach(this.id, ufd, Math.max(0, Math.min(idleMs, 0x7fffffff)), down.bytes, down.ended ? 2 : 0)) {
      if (down.bytes) upstream.unshift(down.bytes);
      return false;
    }
    this.answered = true;
    upstream.destroy();
    return true;
  }

  /**
   * The thread connects to `address` itself (no Node socket), and once connected relays as after
   * attach(). Resolves with the outcome; after a failure the caller refuses.
   */
  connect(address: string, port: number, timeoutMs: number, idleMs: number): Promise<ConnectOutcome> {
    if (this.answered || this.endInfo || this.connectWaiter) return Promise.resolve({ ok: false, code: 'ECONNABORTED' });
    if (!this.addon.connect(this.id, address, port, Math.max(1, Math.min(timeoutMs, 0x7fffffff)), Math.max(0, Math.min(idleMs, 0x7fffffff)))) return Promise.resolve({ ok: false, code: 'EINVAL' });
    return this.connectDone();
  }

  /** Runs once, with the outcome of the connect in progress (the express lane's, or connect()'s): at once if it is known already. */
  onConnected(fn: (o: ConnectOutcome) => void): void {
    const known = this.connectOutcome;
    this.connectOutcome = undefined;
    if (known) fn(known);
    else this.connectWaiter = fn;
  }

  private connectDone(): Promise<ConnectOutcome> {
    return new Promise((resolve) => this.onConnected(resolve));
  }

  /** @internal */
  connected(ok: boolean, errno: number): void {
    const w = this.connectWaiter;
    this.connectWaiter = undefined;
    if (ok) this.answered = true;
    const outcome: ConnectOutcome = ok ? { ok: true } : { ok: false, code: errnoNames.get(errno) ?? 'unknown' };
    if (w) w(outcome);
    else this.connectOutcome ??= outcome;
  }

  /** @internal */
  deliver(s: Sniffed): void {
    if (this.sniffedBytes) return;
    this.sniffedBytes = s;
    const w = this.sniffWaiter;
    this.sniffWaiter = undefined;
    w?.(s);
  }

  /** @internal */
  finish(end: RelayEnd): void {
    if (this.endInfo) return;
    this.endInfo = end;
    // a client gone before its hello was complete: the sniff stage sees a close
    this.deliver({ bytes: NO_BYTES, how: 'closed' });
    this.connected(false, 0);
    const w = this.endWaiter;
    this.endWaiter = undefined;
    w?.(end);
  }
}

export class NativeRelay {
  private readonly ends = new Map<number, (end: RelayEnd) => void>();
  private readonly clients = new Map<number, NativeClient>();
  private readonly listeners = new Map<number, NativeListenerEvents>();
  private nextId = 1;
  /** where an exception thrown by one flow's report goes (the edge logs it); the other reports still run */
  onReportError: ((err: unknown) => void) | undefined;

  /**
   * threaded: the relay runs on its own thread (JS and the relay each wake the other across CPUs);
   * else on Node's loop (Node's thread sleeps in the relay's epoll wait, with libuv's epoll
   * descriptor in the relay's set; no cross-thread wake-up), the default on up to two CPUs
   * (relayOnThread).
   */
  constructor(
    private readonly addon: Addon,
    readonly threaded = false,
  ) {
    addon.start((records, payloads) => this.onRecords(records, payloads), threaded);
  }

  /** flows the relay thread holds */
  get active(): number {
    return this.ends.size + this.clients.size;
  }

  /**
   * A listening socket owned by the relay thread: it accepts, and reads each connection's first
   * bytes (for at most sniffMs) before JS hears of it. Throws as listen() would (code EADDRINUSE...).
   */
  listen(host: string, port: number, backlog: number, sniffMs: number, events: NativeListenerEvents, fd?: number): { port: number; close(): void } {
    const sniff = Math.max(1, Math.min(sniffMs, 0x7fffffff));
    const [idx, bound] = fd === undefined ? this.addon.listen(host, port, backlog, sniff) : this.addon.listen(host, port, backlog, sniff, fd);
    this.listeners.set(idx, events);
    let open = true;
    return {
      port: bound,
      // The handlers stay (until listen() reuses the slot): connections the relay accepted
      // before it closed the socket are still reported, and get the same handling and audit as
      // every other (an edge draining takes them to their end).
      close: () => {
        if (!open) return;
        open = false;
        this.addon.unlisten(idx);
      },
    };
  }

  /**
   * Hands both connected sockets to the relay thread: the client's bytes not yet forwarded
   * (`first` and whatever the client socket has buffered) go to the upstream first, the
   * upstream's buffered bytes to the client; then the Node sockets are closed (the thread holds
   * its own descriptors). false: nothing was taken (no descriptors left); the caller relays.
   */
  adopt(client: Socket, upstream: Socket, first: readonly Buffer[], idleMs: number, done: (end: RelayEnd) => void): boolean {
    const cfd = fdOf(client);
    const ufd = fdOf(upstream);
    if (cfd < 0 || ufd < 0 || client.writableLength > 0 || upstream.writableLength > 0) return false;
    const up = takeBuffered(client, first);
    const down = takeBuffered(upstream, []);
    const id = this.nextId++;
    if (!this.addon.adopt(cfd, ufd, id, Math.max(0, Math.min(idleMs, 0x7fffffff)), up.bytes, down.bytes, (up.ended ? 1 : 0) | (down.ended ? 2 : 0))) {
      // descriptors exhausted: give the bytes back to the JavaScript relay
      if (up.bytes) client.unshift(up.bytes);
      if (down.bytes) upstream.unshift(down.bytes);
      return false;
    }
    this.ends.set(id, done);
    client.destroy();
    upstream.destroy();
    return true;
  }

  /**
   * The express lane: for ttlMs, a complete ClientHello naming `sni` (ech: with an ECH extension)
   * from `peer` on that listener connects straight to address:port, without asking JS; JS hears
   * of the flow as a sniff with this route id. false: not taken (not an address).
   */
  route(listener: number, peer: string, sni: string, ech: boolean, address: string, port: number, ttlMs: number, routeId: number, idleMs: number, timeoutMs: number): boolean {
    return this.addon.route(listener, peer, sni, ech, address, port, Math.max(0, Math.min(Math.floor(ttlMs), 0x7fffffff)), routeId, Math.max(0, Math.min(idleMs, 0x7fffffff)), Math.max(1, Math.min(timeoutMs, 0x7fffffff)));
  }

  /**
   * The express lane connects only while the intake flows open, in all and from the client's
   * address, are well under these (edge.maxConnections as clamped, maxConnectionsPerSource):
   * near a limit JS decides, and refuses exactly at it. Until this is called it never connects.
   */
  expressLimits(maxFlows: number, maxPerSource: number): void {
    this.addon.expressLimits(Math.max(0, Math.min(maxFlows, 0x7fffffff)), Math.max(0, Math.min(maxPerSource, 0x7fffffff)));
  }

  /** Every route goes: the next hello of each is decided by JS again. */
  clearRoutes(): void {
    this.addon.clearRoutes();
  }

  /** Closes every flow (reason shutdown): the end of a drain. */
  killAll(): void {
    if (this.active > 0) this.addon.killAll(SHUTDOWN);
  }

  /** A client the thread had to close at once (out of descriptors): audited like any other. */
  closedClient(address: string, port: number, reason: string): NativeClient {
    const c = new NativeClient(this.addon, 0, address, port);
    c.finish({ bytesUp: 0, bytesDown: 0, reason });
    return c;
  }

  private onRecords(records: Float64Array, payloads: Buffer | undefined): void {
    for (let i = 0; i + RECORD <= records.length; i += RECORD) {
      const id = records[i] as number;
      const code = records[i + 3] as number;
      const errno = records[i + 4] as number;
      const length = records[i + 6] as number;
      const payload = length > 0 && payloads ? payloads.subarray(records[i + 5] as number, (records[i + 5] as number) + length) : undefined;
      try {
        if (code >= EV_ACCEPTED) {
          this.onIntake(id, code, records[i + 1] as number, records[i + 2] as number, errno, payload);
          continue;
        }
        let reason = REASONS[code] ?? 'closed';
        if (code === 4 || code === 5) reason += `:${errnoNames.get(errno) ?? errnoNames.get(-errno) ?? 'unknown'}`;
        const end = { bytesUp: records[i + 1] as number, bytesDown: records[i + 2] as number, reason };
        if (id < 0) {
          const client = this.clients.get(id);
          this.clients.delete(id);
          client?.finish(end);
          continue;
        }
        const done = this.ends.get(id);
        if (!done) continue;
        this.ends.delete(id);
        done(end);
      } catch (err) {
        // a flow's report must not stop the others'
        this.onReportError?.(err);
      }
    }
  }

  private onIntake(id: number, code: number, a: number, b: number, errno: number, payload: Buffer | undefined): void {
    if (code === EV_HELLO) return this.clients.get(id)?.deliver({ bytes: payload ?? NO_BYTES, how: HOW[a] ?? 'closed' });
    if (code === EV_CONNECTED) return this.clients.get(id)?.connected(a === 1, errno);
    if (code === EV_EXPRESS) return this.clients.get(id)?.deliver({ bytes: NO_BYTES, how: 'complete', route: a });
    const events = this.listeners.get(a);
    const address = payload ? payload.toString('latin1') : '';
    if (code === EV_ACCEPTED) {
      const client = new NativeClient(this.addon, id, address, b, a);
      this.clients.set(id, client);
      if (events) events.accepted(client);
      else client.refuse(null, false); // no handlers: not a listener this relay opened
    } else if (code === EV_FD_LIMIT) events?.fdLimit(address, b);
    else if (code === EV_ACCEPT_ERROR) events?.acceptError(errnoNames.get(errno) ?? 'unknown');
  }
}
