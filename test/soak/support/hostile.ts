// Hostile clients and the gauges to judge them by: silent and slow-drip connections, one-shot
// raw clients, lying ClientHellos, TCP socket states from `ss`, fd counts and RSS from /proc.
// Shared by the short CI run (test/integration/hostile-clients.spec.ts) and the soak.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tlsFlow } from './proc-stack';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The p-th percentile (0..100) of the values, nearest rank; NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

/** Open file descriptors of a process (`self` by default). */
export function fdCount(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident set size of a process in bytes. */
export function rssBytes(pid: number | 'self' = 'self'): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Direct children of a process (e.g. the edge's cluster workers). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after the last ')'
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export const MB = 1024 * 1024;

export interface SocketStates {
  /** state (as ss prints it: ESTAB, CLOSE-WAIT, FIN-WAIT-2, TIME-WAIT...) → count */
  states: Record<string, number>;
  /** the offending lines, for failure messages */
  lines: string[];
}

/** TCP sockets whose local or peer port is one of `ports` (every namespace-visible socket, not only ours). */
export function socketStates(ports: number[]): Promise<SocketStates> {
  const want = new Set(ports);
  const portOf = (addr: string): number => Number(addr.slice(addr.lastIndexOf(':') + 1));
  return new Promise((resolve, reject) => {
    execFile('ss', ['-Htan'], { maxBuffer: 256 * MB }, (err, stdout) => {
      if (err) return reject(err);
      const states: Record<string, number> = {};
      const lines: string[] = [];
      for (const line of stdout.split('\n')) {
        const f = line.trim().split(/\s+/);
        if (f.length < 5) continue;
        const [state, , , local, peer] = f as [string, string, string, string, string];
        if (!want.has(portOf(local)) && !want.has(portOf(peer))) continue;
        states[state] = (states[state] ?? 0) + 1;
        if (state !== 'TIME-WAIT' && state !== 'LISTEN') lines.push(line.trim());
      }
      resolve({ states, lines });
    });
  });
}

/** Sockets stuck half-closed: the ones a leak leaves behind. */
export function stuck(s: SocketStates): number {
  return (s.states['CLOSE-WAIT'] ?? 0) + (s.states['FIN-WAIT-2'] ?? 0) + (s.states['LAST-ACK'] ?? 0) + (s.states['FIN-WAIT-1'] ?? 0) + (s.states['CLOSING'] ?? 0);
}

export interface HostileConn {
  socket: Socket;
  /** ms from connect to the edge's close (rejects never: errors count as closes) */
  closed: Promise<{ afterMs: number; received: Buffer; error?: string }>;
  connected: Promise<void>;
  /** the client's port once connected: the flow events' `src` is 127.0.0.1:<localPort> */
  localPort(): number;
}

/**
 * A raw client. `script` runs once connected and may write, wait and end/destroy; whatever the
 * edge sends back is collected until it closes the connection.
 */
export function rawConn(port: number, script: (s: Socket) => void | Promise<void>, host = '127.0.0.1', localAddress?: string): HostileConn {
  const s = connect({ port, host, noDelay: true, allowHalfOpen: true, ...(localAddress ? { localAddress } : {}) });
  const received: Buffer[] = [];
  let t0 = Date.now();
  let localPort = 0;
  let error: string | undefined;
  s.on('data', (d: Buffer) => received.push(d));
  s.on('error', (e: NodeJS.ErrnoException) => (error ??= e.code ?? e.message));
  // the edge ended its side: end ours too, as a well-behaved client would
  s.on('end', () => s.end());
  const connected = new Promise<void>((resolve) =>
    s.once('connect', () => {
      t0 = Date.now();
      localPort = s.localPort ?? 0;
      resolve();
      void Promise.resolve(script(s)).catch(() => undefined);
    }),
  );
  const closed = new Promise<{ afterMs: number; received: Buffer; error?: string }>((resolve) =>
    s.once('close', () => resolve({ afterMs: Date.now() - t0, received: Buffer.concat(received), ...(error ? { error } : {}) })),
  );
  return { socket: s, closed, connected, localPort: () => localPort };
}

/** Connects and says nothing, ever. */
export const silentConn = (port: number, host?: string, localAddress?: string): HostileConn => rawConn(port, () => undefined, host, localAddress);

/** Sends `bytes` one byte every `intervalMs` until they run out or the edge closes; never completes a hello in time. */
export function dripConn(port: number, bytes: Buffer, intervalMs: number, host?: string, localAddress?: string): HostileConn {
  return rawConn(
    port,
    async (s) => {
      for (const b of bytes) {
        if (s.destroyed || !s.writable) return;
        s.write(Buffer.from([b]));
        await sleep(intervalMs);
      }
    },
    host,
    localAddress,
  );
}

/** Writes the chunks, then ends (`end`), resets (`reset`) or keeps the connection open (`hold`). */
export function sendConn(port: number, chunks: Buffer[], after: 'end' | 'reset' | 'hold', delayMs = 0): HostileConn {
  return rawConn(port, async (s) => {
    for (const c of chunks) {
      if (s.destroyed) return;
      s.write(c);
      if (delayMs) await sleep(delayMs);
    }
    if (after === 'end') s.end();
    else if (after === 'reset') {
      await sleep(20);
      s.resetAndDestroy();
    }
  });
}

/** One full TLS handshake through the edge (client to server and back), timed to the reply's end. */
export async function legitHandshake(port: number, servername: string, ca: Buffer, timeoutMs = 10_000): Promise<{ ok: boolean; ms: number; body: string; error?: string }> {
  const f = await tlsFlow('', port, servername, ca, timeoutMs);
  return { ok: f.ok, ms: f.ms, body: f.body, ...(f.errorCode ? { error: f.errorCode } : {}) };
}

// ---- ClientHello surgery ------------------------------------------------------------------

/** TLS record header + handshake header offsets in a single-record hello. */
const REC_LEN = 3;
const HS_LEN = 6;

/** A hello whose record and handshake lengths both claim `extra` more bytes than are sent. */
export function helloClaimingMore(hello: Buffer, extra: number): Buffer {
  const h = Buffer.from(hello);
  h.writeUInt16BE(h.readUInt16BE(REC_LEN) + extra, REC_LEN);
  h.writeUIntBE(h.readUIntBE(HS_LEN, 3) + extra, HS_LEN, 3);
  return h;
}

/** A hello whose handshake length claims `fewer` bytes less than the record carries. */
export function helloClaimingLess(hello: Buffer, fewer: number): Buffer {
  const h = Buffer.from(hello);
  h.writeUIntBE(h.readUIntBE(HS_LEN, 3) - fewer, HS_LEN, 3);
  return h;
}

/** A hello whose server_name entry claims a longer name than the extension holds. */
export function helloWithLyingSniLength(hello: Buffer, servername: string): Buffer {
  const h = Buffer.from(hello);
  const at = h.indexOf(Buffer.from(servername, 'latin1'));
  if (at < 5) throw new Error('server name not found in the hello');
  h.writeUInt16BE(servername.length + 200, at - 2);
  return h;
}

/** A record header declaring a 64 KiB - 1 payload (records carry at most 16 KiB). */
export const OVERLONG_RECORD = Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0x00, 0x10]);

/** A handshake header declaring a 16 MiB ClientHello. */
export const HUGE_HANDSHAKE = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff]);

/** One ClientHello of `total` bytes (body filler) spread over full-size records. */
export function oversizedHello(total = 70 * 1024): Buffer[] {
  const hs = Buffer.alloc(4 + total, 0x41);
  hs[0] = 0x01;
  hs.writeUIntBE(total, 1, 3);
  hs.writeUInt16BE(0x0303, 4);
  const records: Buffer[] = [];
  for (let off = 0; off < hs.length; off += 16_384) {
    const frag = hs.subarray(off, off + 16_384);
    const head = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    head.writeUInt16BE(frag.length, 3);
    records.push(Buffer.concat([head, frag]));
  }
  return records;
}

/** Deterministic pseudo-random bytes (xorshift32), so a failure can be replayed. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

export function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

// ---- upstreams and proxy requests --------------------------------------------------------

/**
 * A plain TCP upstream whose behaviour is named in the SNI the client asked for:
 * srv-end (reply, then close first), cli-end (reply, close when the client does), srv-reset
 * (reply, then RST), mute (never reply; close when the client does).
 */
export function scriptedUpstream(): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.once('data', (d: Buffer) => {
      const text = d.toString('latin1');
      if (text.includes('mute.short.test')) return;
      s.write(Buffer.alloc(512, 0x62));
      if (text.includes('srv-end.short.test')) s.end();
      else if (text.includes('srv-reset.short.test')) setTimeout(() => s.resetAndDestroy(), 5);
      // cli-end: allowHalfOpen is off, so the client's FIN closes this side too
    });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, port: (server.address() as AddressInfo).port, sockets })));
}

/** SOCKS5 greeting (no auth) and CONNECT request for a name, then the name again as the first tunnel bytes. */
export function socksConnect(name: string, port: number): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, name.length]), Buffer.from(name), p, Buffer.from(name)]);
}


/** The ClientHellos the short flows send: one per scripted-upstream behaviour, and a denied name. */
export async function shortFlowHellos(capture: (sni: string) => Promise<Buffer>): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for (const n of ['srv-end', 'cli-end', 'srv-reset', 'mute']) out[n] = await capture(`${n}.short.test`);
  out['denied'] = await capture('denied.test');
  return out;
}

/**
 * Short flows with every close order (relayed, refused, tunnelled) against an edge whose sni
 * listener relays to scriptedUpstream(); `.short.test` must be allowed, `denied.test` denied.
 */
export function shortFlows(ports: { sni: number; connect?: number; socks?: number; upstream: number }, hellos: Record<string, Buffer>, localAddress?: () => string): { name: string; run: () => HostileConn }[] {
  const h = (n: string): Buffer => hellos[n] as Buffer;
  const at = (port: number, script: (s: Socket) => void | Promise<void>): HostileConn => rawConn(port, script, '127.0.0.1', localAddress?.());
  const send = (port: number, chunks: Buffer[], after: 'end' | 'hold'): HostileConn =>
    at(port, (s) => {
      for (const c of chunks) s.write(c);
      if (after === 'end') s.end();
    });
  const port = ports.sni;
  const flows: { name: string; run: () => HostileConn }[] = [
    { name: 'upstream closes first', run: () => send(port, [h('srv-end')], 'hold') },
    {
      name: 'client closes after the reply',
      run: () =>
        at(port, (s) => {
          s.write(h('cli-end'));
          s.once('data', () => s.end());
        }),
    },
    { name: 'client half-closes right after its hello', run: () => send(port, [h('cli-end')], 'end') },
    {
      name: 'client resets after the reply',
      run: () =>
        at(port, (s) => {
          s.write(h('cli-end'));
          s.once('data', () => s.resetAndDestroy());
        }),
    },
    { name: 'upstream resets after the reply', run: () => send(port, [h('srv-reset')], 'hold') },
    {
      name: 'mute upstream, client closes',
      run: () =>
        at(port, async (s) => {
          s.write(h('mute'));
          await sleep(2);
          s.end();
        }),
    },
    { name: 'denied', run: () => send(port, [h('denied')], 'hold') },
    { name: 'not TLS', run: () => send(port, [Buffer.from('SSH-2.0-OpenSSH_9.6\r\n')], 'hold') },
    { name: 'truncated hello', run: () => send(port, [h('cli-end').subarray(0, 40)], 'end') },
    { name: 'closed at once', run: () => send(port, [], 'end') },
  ];
  if (ports.connect) {
    const c = ports.connect;
    flows.push(
      { name: 'CONNECT tunnel, upstream closes first', run: () => send(c, [Buffer.from(`CONNECT srv-end.short.test:${ports.upstream} HTTP/1.1\r\n\r\nsrv-end.short.test`)], 'hold') },
      { name: 'CONNECT denied', run: () => send(c, [Buffer.from('CONNECT denied.test:443 HTTP/1.1\r\n\r\n')], 'hold') },
    );
  }
  if (ports.socks) {
    const k = ports.socks;
    flows.push({
      name: 'SOCKS tunnel, client closes after the reply',
      run: () =>
        at(k, (s) => {
          s.write(socksConnect('cli-end.short.test', ports.upstream));
          s.on('data', (d: Buffer) => d.includes(0x62) && s.end());
        }),
    });
  }
  return flows;
}
