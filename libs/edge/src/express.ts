// The express lane (native intake): a decision the edge made once, repeated by the relay without
// asking JavaScript. When a flow's verdict came from L1 (or was just put there) and its upstream
// was one checked address, the relay gets a route: the same listener, client address, server
// name and ECH flag connect straight to that address for as long as both the L1 entry and the
// name's DNS answer hold. JavaScript then hears of such a flow once its upstream is connecting
// (the route's id in place of the hello), and writes the same flow.start and flow.end as for any
// L1 hit. A new policy version or a lost policy watch clears every route (DecisionClient.onInvalidate).
//
// PORTCULLIS_EXPRESS=0 turns it off (every hello then goes to JavaScript, as before).
import type { NativeRelay } from './native-relay';
import type { Verdict } from './decide';

/** relay.c MAX_ROUTES: the relay keeps at most this many */
export const MAX_ROUTES = 4096;

export interface Route {
  id: number;
  /** the L1 verdict it repeats (source 'l1') */
  verdict: Verdict;
  sni: string;
  ech: boolean;
  address: string;
  port: number;
}

export function expressEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env['PORTCULLIS_EXPRESS'] !== '0';
}

export class ExpressRoutes {
  private current = new Map<number, Route>();
  /**
   * The routes of the generation before the last clear: in thread mode the relay may have matched
   * one just before it took the clear, and that flow still needs its verdict.
   */
  private retired = new Map<number, Route>();
  /** the newest route of each key and when it runs out (Date.now() ms) */
  private readonly byKey = new Map<string, { id: number; until: number }>();
  private nextId = 1;
  /** flows that took the express lane */
  taken = 0;

  constructor(private readonly relay: NativeRelay) {}

  /** The connection limits the relay keeps the lane under (NativeRelay.expressLimits). */
  limits(maxFlows: number, maxPerSource: number): void {
    this.relay.expressLimits(maxFlows, maxPerSource);
  }

  /**
   * Gives the relay a route, unless the key has one that has not run out (flows decided while
   * the relay had not yet taken it, or while it stayed under a limit, find it there). A route
   * that ran out is replaced, and stays known here until the next clear: the relay may have
   * matched it for a flow whose report has not arrived yet. false: not taken.
   */
  add(listener: number, peer: string, r: Omit<Route, 'id'>, ttlMs: number, idleMs: number, timeoutMs: number): boolean {
    if (listener < 0 || ttlMs < 1) return false;
    const key = `${listener}|${peer}|${r.sni}|${r.ech ? 1 : 0}`;
    const now = Date.now();
    const known = this.byKey.get(key);
    if (known && known.until > now) return false;
    if (this.current.size >= MAX_ROUTES) this.clear();
    const id = this.nextId++;
    if (!this.relay.route(listener, peer, r.sni, r.ech, r.address, r.port, ttlMs, id, idleMs, timeoutMs)) return false;
    this.byKey.set(key, { id, until: now + ttlMs });
    this.current.set(id, { id, ...r });
    return true;
  }

  /** The route a flow took (the relay named it). */
  get(id: number): Route | undefined {
    return this.current.get(id) ?? this.retired.get(id);
  }

  clear(): void {
    // nothing made since the last clear: the generation before it stays known
    if (this.current.size === 0) return;
    this.retired = this.current;
    this.current = new Map();
    this.byKey.clear();
    this.relay.clearRoutes();
  }

  get size(): number {
    return this.current.size;
  }
}
