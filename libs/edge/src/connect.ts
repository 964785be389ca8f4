// connect: resolve the decided name (static answers first, then DNS through a TTL-respecting
// cache), drop every address the SSRF guard refuses, and dial exactly the checked addresses with
// Happy Eyeballs (RFC 8305: families interleaved, a new attempt every 250 ms, first one wins).
import { lookup, Resolver } from 'node:dns/promises';
import { isIP, connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { LRUCache } from 'lru-cache';
import type { SsrfGuard } from './ssrf';

export type ConnectFailure = 'dns-failed' | 'connect-timeout' | 'connect-refused' | 'connect-failed' | 'private-destination' | 'sni-mismatch';
/** socket: the connected Node socket; none when a `dial` of ConnectOptions connected by other means (the native intake) */
export type ConnectResult = { ok: true; socket?: Socket; address: string } | { ok: false; reason: ConnectFailure; detail: string };

const ATTEMPT_DELAY_MS = 250;

/** DNS answers cached for their TTL (bounded), failures for a few seconds. */
export class DnsCache {
  private readonly cache: LRUCache<string, { addresses: string[]; expires: number; error?: string }>;
  private readonly resolver = new Resolver({ timeout: 2_000, tries: 2 });

  constructor(private readonly opts: { maxEntries: number; maxTtlMs: number; negativeTtlMs: number }) {
    this.cache = new LRUCache({ max: opts.maxEntries });
  }

  /** How much longer the cached answer for `name` holds (ms; 0: none, or a failure). */
  freshFor(name: string): number {
    const hit = this.cache.peek(name);
    return hit && !hit.error ? Math.max(0, hit.expires - Date.now()) : 0;
  }

  async resolve(name: string): Promise<string[]> {
    const hit = this.cache.get(name);
    if (hit && hit.expires > Date.now()) {
      if (hit.error) throw Object.assign(new Error(hit.error), { code: hit.error });
      return hit.addresses;
    }
    const [v6, v4] = await Promise.all([this.resolver.resolve6(name, { ttl: true }).catch(() => []), this.resolver.resolve4(name, { ttl: true }).catch(() => [])]);
    let answers = [...v6, ...v4];
    let ttl = Math.min(...answers.map((a) => a.ttl * 1000), this.opts.maxTtlMs);
    if (answers.length === 0) {
      // Not in DNS: /etc/hosts and other NSS sources only answer through getaddrinfo (no TTL).
      try {
        answers = (await lookup(name, { all: true, verbatim: true })).map((a) => ({ address: a.address, ttl: 30 }));
        ttl = Math.min(30_000, this.opts.maxTtlMs);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'ENOTFOUND';
        this.cache.set(name, { addresses: [], expires: Date.now() + this.opts.negativeTtlMs, error: code });
        throw err;
      }
    }
    const addresses = answers.map((a) => a.address);
    this.cache.set(name, { addresses, expires: Date.now() + Math.max(1_000, ttl) });
    return addresses;
  }
}

/** How much longer resolveName's answer for `name` holds (ms): static and literal answers always do. */
export function answerFreshFor(name: string, overrides: Readonly<Record<string, readonly string[]>>, dns?: DnsCache): number {
  if (overrides[name] || isIP(name)) return Number.MAX_SAFE_INTEGER;
  return dns ? dns.freshFor(name) : 0;
}

export async function resolveName(name: string, overrides: Readonly<Record<string, readonly string[]>>, dns?: DnsCache): Promise<string[]> {
  const fixed = overrides[name];
  if (fixed) return [...fixed];
  if (isIP(name)) return [name];
  if (dns) return dns.resolve(name);
  return (await lookup(name, { all: true, verbatim: true })).map((a) => a.address);
}

/** IPv6 first, then alternating families (RFC 8305 §4). */
export function interleave(addresses: string[]): string[] {
  const v6 = addresses.filter((a) => isIP(a) === 6);
  const v4 = addresses.filter((a) => isIP(a) === 4);
  const out: string[] = [];
  for (let i = 0; i < Math.max(v6.length, v4.length); i++) {
    if (v6[i]) out.push(v6[i] as string);
    if (v4[i]) out.push(v4[i] as string);
  }
  return out;
}

const ignore = (): void => undefined;

/** One address: a plain connect with a deadline (no racing, no timers beyond the deadline). */
function dialOne(address: string, port: number, timeoutMs: number): Promise<ConnectResult> {
  return new Promise((resolve) => {
    const s = netConnect({ host: address, port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ ok: false, reason: 'connect-timeout', detail: `no answer from ${address} port ${port} within ${timeoutMs} ms` });
    }, timeoutMs);
    const onError = (err: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ ok: false, reason: err.code === 'ECONNREFUSED' ? 'connect-refused' : 'connect-failed', detail: `${address}:${port}: ${err.code ?? err.message}` });
    };
    s.once('error', onError);
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', onError);
      s.on('error', ignore); // until the relay attaches its own
      resolve({ ok: true, socket: s, address });
    });
  });
}

/** Races connection attempts, one new attempt every ATTEMPT_DELAY_MS or as soon as one fails. */
export function happyEyeballs(addresses: string[], port: number, timeoutMs: number): Promise<ConnectResult> {
  return new Promise((resolve) => {
    const sockets = new Set<Socket>();
    let next = 0;
    let failed = 0;
    let done = false;
    let lastError: ConnectResult = { ok: false, reason: 'connect-failed', detail: 'no address' };
    let stagger: NodeJS.Timeout | undefined;
    const finish = (r: ConnectResult): void => {
      if (done) return;
      done = true;
      clearTimeout(overall);
      clearTimeout(stagger);
      for (const s of sockets) if (!r.ok || s !== r.socket) s.destroy();
      resolve(r);
    };
    const overall = setTimeout(() => finish({ ok: false, reason: 'connect-timeout', detail: `no answer from ${addresses.join(', ')} port ${port} within ${timeoutMs} ms` }), timeoutMs);
    const attempt = (): void => {
      if (done || next >= addresses.length) return;
      const address = addresses[next++] as string;
      const s = netConnect({ host: address, port, allowHalfOpen: true, noDelay: true });
      sockets.add(s);
      s.once('connect', () => {
        s.removeAllListeners('error');
        s.on('error', ignore); // until the relay attaches its own
        finish({ ok: true, socket: s, address });
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        sockets.delete(s);
        s.destroy();
        lastError = { ok: false, reason: err.code === 'ECONNREFUSED' ? 'connect-refused' : 'connect-failed', detail: `${address}:${port}: ${err.code ?? err.message}` };
        if (++failed === addresses.length) finish(lastError);
        else {
          clearTimeout(stagger);
          attempt();
          scheduleNext();
        }
      });
    };
    const scheduleNext = (): void => {
      if (next < addresses.length) stagger = setTimeout(() => {
        attempt();
        scheduleNext();
      }, ATTEMPT_DELAY_MS);
    };
    attempt();
    scheduleNext();
  });
}

export interface ConnectOptions {
  resolve: Readonly<Record<string, readonly string[]>>;
  timeoutMs: number;
  guard: SsrfGuard;
  allowPrivate: readonly string[];
  dns?: DnsCache;
  /**
   * transparent mode: the address the client was going to. It must be one of the name's own
   * addresses (a forged SNI is refused), and it is the only one dialled.
   */
  originalAddress?: string;
  /** dials a single checked address instead of a Node socket (the relay thread's own connect) */
  dial?: (address: string, port: number, timeoutMs: number) => Promise<ConnectResult>;
}

export async function connectUpstream(name: string, port: number, opts: ConnectOptions): Promise<ConnectResult> {
  let addresses: string[];
  try {
    addresses = name ? await resolveName(name, opts.resolve, opts.dns) : [];
  } catch (err) {
    if (!opts.originalAddress) return { ok: false, reason: 'dns-failed', detail: `${name}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
    addresses = [];
  }
  if (opts.originalAddress) {
    const original = opts.originalAddress;
    if (name && !addresses.some((a) => a.toLowerCase() === original.toLowerCase())) {
      return { ok: false, reason: 'sni-mismatch', detail: `${name} does not resolve to the original destination ${original} (${addresses.join(', ') || 'no addresses'})` };
    }
    addresses = [original];
  }
  if (addresses.length === 0) return { ok: false, reason: 'dns-failed', detail: `${name}: no addresses` };
  const refused: string[] = [];
  const allowed = addresses.filter((a) => {
    const c = opts.guard.check(a, opts.allowPrivate);
    if (!c.ok) refused.push(`${a} (${c.range})`);
    return c.ok;
  });
  if (allowed.length === 0) return { ok: false, reason: 'private-destination', detail: `${name} resolves only to refused addresses: ${refused.join(', ')}` };
  if (allowed.length === 1) return (opts.dial ?? dialOne)(allowed[0] as string, port, opts.timeoutMs);
  return happyEyeballs(interleave(allowed), port, opts.timeoutMs);
}
