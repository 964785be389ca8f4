import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './config';

function problems(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('config', () => {
  it('fills safe defaults for an empty file', () => {
    const c = parseConfig({});
    expect(c.redis.url).toBeUndefined();
    expect(c.edge.failMode).toBe('closed');
    expect(c.edge.sniffTimeoutMs).toBe(5000);
    expect(c.edge.decideTimeoutMs).toBe(250);
    expect(c.policy.listen).toBe('127.0.0.1:50051');
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('accepts the documented example keys', () => {
    const c = parseConfig({
      redis: { url: 'redis://127.0.0.1:6379' },
      policy: { listen: '127.0.0.1:50051', profile: 'profiles/example.yaml', adminToken: 'change-me' },
      edge: { nodeId: 'edge-1', policyService: '127.0.0.1:50051', listeners: [{ name: 'tls', mode: 'sni', listen: '127.0.0.1:8443', upstreamPort: 443 }], resolve: { 'example.test': ['127.0.0.2'] }, sniffTimeoutMs: 5000 },
      audit: { log: 'data/audit.log' },
    });
    expect(c.edge.listeners[0]?.upstreamPort).toBe(443);
    expect(c.edge.resolve['example.test']).toEqual(['127.0.0.2']);
  });

  it('names every unknown key and wrong type by its path, all at once', () => {
    const p = problems({ edge: { listeners: [{ name: 'tls', mode: 'sni', listen: '127.0.0.1:8443', upstreamPort: '443' }], sniffTimeout: 5 }, polcy: {}, redis: { url: 'http://x' } });
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^edge\.listeners\[0\]\.upstreamPort: /),
        'edge.sniffTimeout: unknown key',
        'polcy: unknown key',
        expect.stringMatching(/^redis\.url: /),
      ]),
    );
    expect(p).toHaveLength(4);
  });

  it('refuses unknown listener modes, bad addresses and duplicate listener names', () => {
    expect(problems({ edge: { listeners: [{ name: 'a', mode: 'udp', listen: '127.0.0.1:1' }] } })[0]).toMatch(/^edge\.listeners\[0\]\.mode/);
    expect(problems({ edge: { listeners: [{ name: 'a', mode: 'sni', listen: 'nowhere' }] } })[0]).toMatch(/^edge\.listeners\[0\]\.listen: expected HOST:PORT/);
    expect(problems({ edge: { resolve: { x: ['not-an-ip'] } } })[0]).toMatch(/^edge\.resolve\.x\[0\]/);
    const dup = { name: 'a', mode: 'sni', listen: '127.0.0.1:1' };
    expect(problems({ edge: { listeners: [dup, dup] } })).toEqual(['edge.listeners[1].name: duplicate listener name "a"']);
  });
});
