import { describe, expect, it } from 'vitest';
import { ExpressRoutes, expressEnabled } from './express';
import type { NativeRelay } from './native-relay';
import type { Verdict } from './decide';

const verdict: Verdict = { verdict: 'allow', ruleId: 'r', reason: 'rule', detail: '', policyVersion: 1, wouldDeny: false, allowPrivate: [], source: 'l1' };
const route = (sni: string) => ({ verdict, sni, ech: false, address: '127.0.0.1', port: 443 });

/** The relay's side of the routes, as the commands JavaScript gave it. */
function relay() {
  const calls: string[] = [];
  const r = {
    route: (listener: number, peer: string, sni: string, _ech: boolean, _a: string, _p: number, ttlMs: number, id: number) => {
      calls.push(`route ${id} ${listener} ${peer} ${sni} ${ttlMs}`);
      return true;
    },
    clearRoutes: () => calls.push('clear'),
    expressLimits: () => undefined,
  };
  return { calls, relay: r as unknown as NativeRelay };
}

describe('ExpressRoutes: what the relay is given, and which flows JavaScript can still account for', () => {
  it('one route per key while it holds: a flow decided meanwhile does not replace it', () => {
    const { calls, relay: rel } = relay();
    const routes = new ExpressRoutes(rel);
    expect(routes.add(0, '10.0.0.1', route('a.test'), 60_000, 0, 1_000)).toBe(true);
    expect(routes.add(0, '10.0.0.1', route('a.test'), 60_000, 0, 1_000)).toBe(false);
    expect(routes.add(0, '10.0.0.2', route('a.test'), 60_000, 0, 1_000)).toBe(true);
    expect(routes.add(1, '10.0.0.1', route('a.test'), 60_000, 0, 1_000)).toBe(true);
    expect(calls).toEqual(['route 1 0 10.0.0.1 a.test 60000', 'route 2 0 10.0.0.2 a.test 60000', 'route 3 1 10.0.0.1 a.test 60000']);
    expect(routes.get(1)?.sni).toBe('a.test');
  });

  it('a route that ran out is replaced, and its id still resolves for a report on its way', async () => {
    const { relay: rel } = relay();
    const routes = new ExpressRoutes(rel);
    routes.add(0, '10.0.0.1', route('a.test'), 1, 0, 1_000);
    await new Promise((r) => setTimeout(r, 5));
    expect(routes.add(0, '10.0.0.1', route('a.test'), 60_000, 0, 1_000)).toBe(true);
    expect(routes.get(1)).toBeDefined();
    expect(routes.get(2)).toBeDefined();
  });

  it('a clear keeps the last generation resolvable, through clears with nothing new, until the next one', () => {
    const { calls, relay: rel } = relay();
    const routes = new ExpressRoutes(rel);
    routes.add(0, 'p', route('a.test'), 60_000, 0, 1_000);
    routes.clear();
    routes.clear(); // the policy watch retrying: nothing was made in between
    expect(routes.get(1)?.sni).toBe('a.test');
    expect(routes.size).toBe(0);
    // the key may have a route again at once
    expect(routes.add(0, 'p', route('a.test'), 60_000, 0, 1_000)).toBe(true);
    routes.clear();
    expect(routes.get(2)?.sni).toBe('a.test');
    expect(routes.get(1)).toBeUndefined();
    expect(calls.filter((c) => c === 'clear')).toHaveLength(2);
  });

  it('PORTCULLIS_EXPRESS=0 turns the lane off; anything else leaves it on', () => {
    expect(expressEnabled({ PORTCULLIS_EXPRESS: '0' })).toBe(false);
    expect(expressEnabled({})).toBe(true);
    expect(expressEnabled({ PORTCULLIS_EXPRESS: '1' })).toBe(true);
  });
});
