import { describe, expect, it } from 'vitest';
import { compileProfile } from './compile';
import { discoverProfile, discoverRules, registrableDomain } from './discover';
import { parseProfileText } from './parse-text';

describe('discover', () => {
  it.each([
    ['api.github.com', 'github.com'],
    ['github.com', 'github.com'],
    ['a.b.example.co.uk', 'example.co.uk'],
    ['user.github.io', 'user.github.io'],
    ['com', 'com'],
  ])('registrable domain of %s is %s', (name, domain) => {
    expect(registrableDomain(name)).toBe(domain);
  });

  it('groups many subdomains into a wildcard and keeps the rest exact', () => {
    const rules = discoverRules([
      { name: 'a.cdn.example.com', port: 443 },
      { name: 'b.cdn.example.com', port: 443 },
      { name: 'c.example.com', port: 443 },
      { name: 'API.GitHub.com.', port: 443 },
      { name: 'github.com', port: 22 },
      { name: '1.2.3.4', port: 443 },
    ]);
    expect(rules).toEqual([
      { id: 'example-com', action: 'allow', fqdns: ['*.example.com'], ports: [443] },
      { id: 'github-com', action: 'allow', fqdns: ['api.github.com', 'github.com'], ports: [22, 443] },
    ]);
  });

  it('the suggested profile validates and, enforced, allows every flow seen and not an unrelated name', () => {
    const seen = [
      { name: 'x.s3.amazonaws.com', port: 443 },
      { name: 'a.svc.example.org', port: 443 },
      { name: 'b.svc.example.org', port: 443 },
      { name: 'c.svc.example.org', port: 8443 },
      { name: 'example.org', port: 443 },
      { name: 'registry.npmjs.org', port: 443 },
    ];
    const parsed = parseProfileText(discoverProfile(seen).replace('mode: monitor', 'mode: enforce'));
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const policy = compileProfile(parsed.profile);
    for (const s of seen) expect(policy.decide({ name: s.name, port: s.port }).verdict).toBe('allow');
    expect(policy.decide({ name: 'evil.com', port: 443 }).verdict).toBe('deny');
    expect(policy.decide({ name: 'registry.npmjs.org', port: 22 }).verdict).toBe('deny');
  });
});
