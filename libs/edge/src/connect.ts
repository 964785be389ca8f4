// connect: resolve the decided name (static answers first, then DNS) and dial it with a timeout.
import { lookup } from 'node:dns/promises';
import { isIP, connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';

export type ConnectResult = { ok: true; socket: Socket; address: string } | { ok: false; reason: 'dns-failed' | 'connect-timeout' | 'connect-refused' | 'connect-failed'; detail: string };

export async function resolveName(name: string, overrides: Readonly<Record<string, readonly string[]>>): Promise<string[]> {
  const fixed = overrides[name];
  if (fixed) return [...fixed];
  if (isIP(name)) return [name];
  const answers = await lookup(name, { all: true, verbatim: true });
  return answers.map((a) => a.address);
}

export function dial(address: string, port: number, timeoutMs: number): Promise<ConnectResult> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: address, port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ok: false, reason: 'connect-timeout', detail: `no answer from ${address}:${port} within ${timeoutMs} ms` });
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve({ ok: true, socket, address });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok: false, reason: err.code === 'ECONNREFUSED' ? 'connect-refused' : 'connect-failed', detail: `${address}:${port}: ${err.code ?? err.message}` });
    });
  });
}

/** Resolves then tries each address in turn (Happy Eyeballs comes with the edge issue). */
export async function connectUpstream(name: string, port: number, opts: { resolve: Readonly<Record<string, readonly string[]>>; timeoutMs: number }): Promise<ConnectResult> {
  let addresses: string[];
  try {
    addresses = await resolveName(name, opts.resolve);
  } catch (err) {
    return { ok: false, reason: 'dns-failed', detail: `${name}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
  }
  if (addresses.length === 0) return { ok: false, reason: 'dns-failed', detail: `${name}: no addresses` };
  let last: ConnectResult = { ok: false, reason: 'connect-failed', detail: 'no address tried' };
  for (const address of addresses) {
    last = await dial(address, port, opts.timeoutMs);
    if (last.ok) return last;
  }
  return last;
}
