// The native data plane (native/relay): once a flow is decided and its upstream connected, both
// sockets' descriptors go to one relay thread per process (epoll, recv/send from one scratch
// buffer) and the Node sockets are closed. No JavaScript runs per chunk; a flow comes back to JS
// once, when it ends, with its byte counts and close reason. `edge.relay: node` keeps the
// JavaScript relay (flow.ts). CONNECT/SOCKS tunnels start in the JavaScript relay (their
// ClientHello check reads the client's first bytes after the decision) and are handed over once
// it passes.
import { constants } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { findAddon, requireAddon } from './addon';

interface Addon {
  start(done: (records: Float64Array) => void): void;
  adopt(clientFd: number, upstreamFd: number, id: number, idleMs: number, upFirst: Buffer | null, downFirst: Buffer | null, flags: number): boolean;
  killAll(reason: number): void;
  setMaxPipes(directions: number): void;
}

export interface RelayEnd {
  bytesUp: number;
  bytesDown: number;
  /** client-closed, upstream-closed, idle-timeout, client-error:CODE, upstream-error:CODE, shutdown */
  reason: string;
}

const ADDON = join('native', 'relay', 'build', 'Release', 'relay.node');
const RECORD = 5;
const REASONS = ['', 'client-closed', 'upstream-closed', 'idle-timeout', 'client-error', 'upstream-error', 'shutdown'];
const SHUTDOWN = 6;
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
    loaded = new NativeRelay(requireAddon<Addon>(path));
  } catch (err) {
    loadError = `${ADDON}: ${(err as Error).message}`;
  }
  return loaded;
}

export function nativeRelayError(): string | undefined {
  return loadError;
}

export class NativeRelay {
  private readonly ends = new Map<number, (end: RelayEnd) => void>();
  private nextId = 1;

  constructor(private readonly addon: Addon) {
    addon.start((records) => this.onEnds(records));
  }

  /** flows the relay thread holds */
  get active(): number {
    return this.ends.size;
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

  /** How many flow directions may splice through a pipe at once (two descriptors each; 0: none). */
  setPipeBudget(directions: number): void {
    this.addon.setMaxPipes(Math.max(0, Math.floor(directions)));
  }

  /** Closes every flow (reason shutdown): the end of a drain. */
  killAll(): void {
    if (this.ends.size > 0) this.addon.killAll(SHUTDOWN);
  }

  private onEnds(records: Float64Array): void {
    for (let i = 0; i + RECORD <= records.length; i += RECORD) {
      const id = records[i] as number;
      const done = this.ends.get(id);
      if (!done) continue;
      this.ends.delete(id);
      const code = records[i + 3] as number;
      const errno = records[i + 4] as number;
      let reason = REASONS[code] ?? 'closed';
      if (code === 4 || code === 5) reason += `:${errnoNames.get(errno) ?? errnoNames.get(-errno) ?? 'unknown'}`;
      try {
        done({ bytesUp: records[i + 1] as number, bytesDown: records[i + 2] as number, reason });
      } catch {
        // a flow's report must not stop the others' (it logs its own failures)
      }
    }
  }
}
