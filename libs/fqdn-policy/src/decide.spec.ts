import { describe, expect, it } from 'vitest';
import { compileProfile, validateProfile, type CompiledPolicy, type DecisionInput } from './index';

type RawRule = Record<string, unknown>;

function policy(rules: RawRule[], top: Record<string, unknown> = {}): CompiledPolicy {
  const r = validateProfile({ apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 't', defaultAction: 'deny', ...top, rules });
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return compileProfile(r.profile);
}

/** One rule with one pattern: does `name` match it? */
function matches(pattern: string, name: string): boolean | 'invalid' {
  const d = policy([{ id: 'p', action: 'allow', fqdns: [pattern] }]).decide({ name, port: 443 });
  if (d.reason === 'invalid-name') return 'invalid';
  return d.reason === 'rule';
}

describe('name patterns', () => {
  const table: [pattern: string, name: string, expected: boolean | 'invalid'][] = [
    // exact
    ['x.com', 'x.com', true],
    ['x.com', 'X.COM', true],
    ['x.com', 'x.com.', true],
    ['x.com', 'x.com..', 'invalid'],
    ['x.com', 'a.x.com', false],
    ['x.com', 'ax.com', false],
    ['x.com', 'x.com.evil', false],
    ['x.com', 'x.co', false],
    ['X.Com.', 'x.com', true],
    // "*.x" = any subdomain at any depth, never the apex
    ['*.x.com', 'x.com', false],
    ['*.x.com', 'a.x.com', true],
    ['*.x.com', 'a.b.c.x.com', true],
    ['*.x.com', 'A.X.COM.', true],
    ['*.x.com', 'ax.com', false],
    ['*.x.com', 'a.ax.com', false],
    // ".x" = apex and every subdomain
    ['.x.com', 'x.com', true],
    ['.x.com', 'a.x.com', true],
    ['.x.com', 'a.b.x.com', true],
    ['.x.com', 'ax.com', false],
    ['.x.com', 'notx.com', false],
    // suffix over-match (tinyproxy#627): trusted.net must not admit nottrusted.net
    ['trusted.net', 'nottrusted.net', false],
    ['.trusted.net', 'nottrusted.net', false],
    ['.trusted.net', 'trusted.net', true],
    // underscores occur in real names
    ['_dmarc.x.com', '_dmarc.x.com', true],
    // IDN: rules in Unicode are converted; names on the wire must already be A-labels
    ['bücher.de', 'xn--bcher-kva.de', true],
    ['bücher.de', 'bücher.de', 'invalid'],
    ['xn--bcher-kva.de', 'XN--BCHER-KVA.DE', true],
    ['аррӏе.com', 'xn--80ak6aa92e.com', true],
    ['аррӏе.com', 'apple.com', false],
    // hostile names
    ['x.com', 'x.com\u0000.evil', 'invalid'],
    ['x.com', 'x.com\u0000', 'invalid'],
    ['x.com', 'a b.x.com', 'invalid'],
    ['x.com', 'x.com:443', 'invalid'],
    ['.x.com', '.x.com', 'invalid'],
    ['x.com', '127.0.0.1', 'invalid'],
    ['x.com', '::1', 'invalid'],
    ['x.com', `${'a'.repeat(64)}.x.com`, 'invalid'],
  ];
  it.each(table)('%s vs %j -> %s', (pattern, name, expected) => {
    expect(matches(pattern, name)).toBe(expected);
  });
});

describe('decide', () => {
  it('first match wins, even when a later rule is more specific', () => {
    const p = policy([
      { id: 'deny-x', action: 'deny', fqdns: ['.x.com'] },
      { id: 'allow-a', action: 'allow', fqdns: ['a.x.com'] },
    ]);
    expect(p.decide({ name: 'a.x.com', port: 443 })).toMatchObject({ verdict: 'deny', ruleId: 'deny-x', reason: 'rule' });
    const q = policy([
      { id: 'allow-a', action: 'allow', fqdns: ['a.x.com'] },
      { id: 'deny-x', action: 'deny', fqdns: ['.x.com'] },
    ]);
    expect(q.decide({ name: 'a.x.com', port: 443 })).toMatchObject({ verdict: 'allow', ruleId: 'allow-a' });
    expect(q.decide({ name: 'b.x.com', port: 443 })).toMatchObject({ verdict: 'deny', ruleId: 'deny-x' });
  });

  it('order holds across regex, name-less and name rules', () => {
    const p = policy([
      { id: 'regex-deny', action: 'deny', fqdnRegex: ['^.*\\.x\\.com$'], ports: [80] },
      { id: 'clients', action: 'deny', sources: ['192.0.2.0/24'] },
      { id: 'exact-allow', action: 'allow', fqdns: ['a.x.com'] },
      { id: 'regex-allow', action: 'allow', fqdnRegex: ['^[a-z]+\\.y\\.com$'] },
    ]);
    expect(p.decide({ name: 'a.x.com', port: 80 }).ruleId).toBe('regex-deny');
    expect(p.decide({ name: 'a.x.com', port: 443, sourceIp: '192.0.2.7' }).ruleId).toBe('clients');
    expect(p.decide({ name: 'a.x.com', port: 443, sourceIp: '10.0.0.1' }).ruleId).toBe('exact-allow');
    expect(p.decide({ name: 'b.y.com', port: 443 }).ruleId).toBe('regex-allow');
    expect(p.decide({ name: 'b.z.com', port: 443 })).toMatchObject({ ruleId: '', reason: 'default', verdict: 'deny' });
  });

  it('a name in several rules takes the first whose ports and sources pass', () => {
    const p = policy([
      { id: 'tls-only', action: 'allow', fqdns: ['a.x.com'], ports: [443] },
      { id: 'from-lab', action: 'allow', fqdns: ['.x.com'], sources: ['10.9.0.0/16'] },
      { id: 'rest', action: 'deny', fqdns: ['a.x.com', '*.x.com'] },
    ]);
    expect(p.decide({ name: 'a.x.com', port: 443 }).ruleId).toBe('tls-only');
    expect(p.decide({ name: 'a.x.com', port: 22, sourceIp: '10.9.1.1' }).ruleId).toBe('from-lab');
    expect(p.decide({ name: 'a.x.com', port: 22, sourceIp: '10.8.1.1' }).ruleId).toBe('rest');
    expect(p.decide({ name: 'x.com', port: 22, sourceIp: '10.8.1.1' }).ruleId).toBe('');
  });

  const portsAndSources: [string, DecisionInput, string][] = [
    ['port in list', { name: 'x.com', port: 443 }, 'r'],
    ['port not in list', { name: 'x.com', port: 80 }, ''],
    ['IPv4 source in CIDR', { name: 's.com', port: 1, sourceIp: '10.1.2.3' }, 's'],
    ['IPv4 source outside', { name: 's.com', port: 1, sourceIp: '11.1.2.3' }, ''],
    ['IPv4-mapped IPv6 source matches IPv4 CIDR', { name: 's.com', port: 1, sourceIp: '::ffff:10.1.2.3' }, 's'],
    ['IPv4-mapped hex form too', { name: 's.com', port: 1, sourceIp: '::ffff:a01:203' }, 's'],
    ['IPv6 source in CIDR', { name: 's.com', port: 1, sourceIp: '2001:db8::1' }, 's'],
    ['IPv6 source outside', { name: 's.com', port: 1, sourceIp: '2001:db9::1' }, ''],
    ['IPv6 zone is ignored', { name: 's.com', port: 1, sourceIp: 'fe80::1%eth0' }, 's'],
    ['bare IP source = /32', { name: 's.com', port: 1, sourceIp: '192.0.2.1' }, 's'],
    ['next address is not in a /32', { name: 's.com', port: 1, sourceIp: '192.0.2.2' }, ''],
    ['no source given', { name: 's.com', port: 1 }, ''],
    ['unparseable source', { name: 's.com', port: 1, sourceIp: 'nonsense' }, ''],
  ];
  it.each(portsAndSources)('%s', (_, input, ruleId) => {
    const p = policy([
      { id: 'r', action: 'allow', fqdns: ['x.com'], ports: [443, 8443] },
      { id: 's', action: 'allow', fqdns: ['s.com'], sources: ['10.0.0.0/8', '2001:db8::/32', 'fe80::/10', '192.0.2.1'] },
    ]);
    expect(p.decide(input).ruleId).toBe(ruleId);
  });

  it('regex rules are anchored and case-insensitive', () => {
    const p = policy([{ id: 'ads', action: 'deny', fqdnRegex: ['ads[0-9]*\\.example\\.net'] }], { defaultAction: 'allow' });
    expect(p.decide({ name: 'ads12.example.net', port: 443 }).ruleId).toBe('ads');
    expect(p.decide({ name: 'ADS1.Example.NET.', port: 443 }).ruleId).toBe('ads');
    expect(p.decide({ name: 'ads.example.net.evil.com', port: 443 }).ruleId).toBe('');
    expect(p.decide({ name: 'xads.example.net', port: 443 }).ruleId).toBe('');
  });

  it('the decision says why, in a stable code and one sentence', () => {
    const p = policy([{ id: 'github', action: 'allow', fqdns: ['github.com'], allowPrivate: ['10.0.0.0/8'] }]);
    expect(p.decide({ name: 'github.com', port: 443 })).toEqual({
      verdict: 'allow',
      ruleId: 'github',
      reason: 'rule',
      detail: 'matched rule github',
      wouldDeny: false,
      wouldDenyRuleId: '',
      allowPrivate: ['10.0.0.0/8'],
    });
    expect(p.decide({ name: 'gitlab.com', port: 443 })).toEqual({
      verdict: 'deny',
      ruleId: '',
      reason: 'default',
      detail: 'no rule matched; default action deny',
      wouldDeny: false,
      wouldDenyRuleId: '',
      allowPrivate: [],
    });
    expect(Object.isFrozen(p.decide({ name: 'github.com', port: 443 }))).toBe(true);
  });
});

describe('no name, ECH, invalid names', () => {
  const p = policy([{ id: 'x', action: 'allow', fqdns: ['x.com'] }], { noSni: 'allow', ech: 'deny' });
  const cases: [string, DecisionInput, { verdict: string; reason: string }][] = [
    ['no name', { port: 443 }, { verdict: 'allow', reason: 'no-sni' }],
    ['empty name', { name: '', port: 443 }, { verdict: 'allow', reason: 'no-sni' }],
    ['client stayed silent', { port: 25, noNameReason: 'client-silent' }, { verdict: 'allow', reason: 'client-silent' }],
    ['not TLS', { port: 22, noNameReason: 'not-tls' }, { verdict: 'allow', reason: 'not-tls' }],
    ['ECH present', { name: 'x.com', port: 443, ech: true }, { verdict: 'deny', reason: 'ech' }],
    ['ECH present, no name', { port: 443, ech: true }, { verdict: 'deny', reason: 'ech' }],
    ['ECH GREASE: the name decides', { name: 'x.com', port: 443, ech: true, echGrease: true }, { verdict: 'allow', reason: 'rule' }],
    ['ECH GREASE, unknown name', { name: 'y.com', port: 443, ech: true, echGrease: true }, { verdict: 'deny', reason: 'default' }],
    ['NUL in the name', { name: 'x.com\u0000', port: 443 }, { verdict: 'allow', reason: 'invalid-name' }],
    ['Unicode SNI', { name: 'bücher.de', port: 443 }, { verdict: 'allow', reason: 'invalid-name' }],
    ['IP literal', { name: '10.0.0.1', port: 443 }, { verdict: 'allow', reason: 'invalid-name' }],
  ];
  it.each(cases)('%s', (_, input, expected) => {
    expect(p.decide(input)).toMatchObject(expected);
  });

  it('the ech and noSni actions come from the profile', () => {
    const q = policy([{ id: 'x', action: 'allow', fqdns: ['x.com'] }], { noSni: 'deny', ech: 'allow' });
    expect(q.decide({ name: 'y.com', port: 443, ech: true })).toMatchObject({ verdict: 'allow', reason: 'ech' });
    expect(q.decide({ port: 443, noNameReason: 'client-silent' })).toMatchObject({ verdict: 'deny', reason: 'client-silent', detail: 'no name learned (client-silent); noSni action deny' });
    expect(q.decide({ name: 'a\u0000b', port: 443 }).detail).toMatch(/^invalid name \(bad-char: .*\); noSni action deny$/);
  });
});

describe('monitor mode', () => {
  const p = policy(
    [
      { id: 'ok', action: 'allow', fqdns: ['ok.com'], allowPrivate: ['10.0.0.0/8'] },
      { id: 'ads', action: 'deny', fqdns: ['.ads.com'] },
    ],
    { mode: 'monitor', noSni: 'deny', ech: 'deny' },
  );
  const cases: [string, DecisionInput, Record<string, unknown>][] = [
    ['allow rule', { name: 'ok.com', port: 443 }, { verdict: 'allow', ruleId: 'ok', reason: 'rule', wouldDeny: false, wouldDenyRuleId: '', allowPrivate: ['10.0.0.0/8'] }],
    ['deny rule', { name: 'x.ads.com', port: 443 }, { verdict: 'allow', ruleId: 'ads', reason: 'rule', wouldDeny: true, wouldDenyRuleId: 'ads', allowPrivate: [] }],
    ['default deny', { name: 'other.com', port: 443 }, { verdict: 'allow', ruleId: '', reason: 'default', wouldDeny: true, wouldDenyRuleId: '' }],
    ['noSni deny', { port: 443, noNameReason: 'client-silent' }, { verdict: 'allow', reason: 'client-silent', wouldDeny: true }],
    ['ech deny', { name: 'ok.com', port: 443, ech: true }, { verdict: 'allow', reason: 'ech', wouldDeny: true }],
    ['invalid name', { name: 'ok.com\u0000', port: 443 }, { verdict: 'allow', reason: 'invalid-name', wouldDeny: true }],
  ];
  it.each(cases)('%s', (_, input, expected) => {
    expect(p.decide(input)).toMatchObject(expected);
  });
  it('says so in the detail', () => {
    expect(p.decide({ name: 'x.ads.com', port: 443 }).detail).toBe('monitor mode: would deny (matched rule ads)');
  });
});

describe('explain', () => {
  const p = policy([
    { id: 'github', action: 'allow', fqdns: ['github.com', '*.github.com'], ports: [443] },
    { id: 'lab', action: 'allow', fqdns: ['.lab.example'], sources: ['10.0.0.0/8'] },
    { id: 'ads', action: 'deny', fqdnRegex: ['^ads[0-9]*\\.example\\.net$'] },
  ]);

  it('traces every rule with the reason it matched or not', () => {
    const e = p.explain({ name: 'API.GitHub.com.', port: 80, sourceIp: '10.1.1.1' });
    expect(e.normalizedName).toBe('api.github.com');
    expect(e.decision).toMatchObject({ verdict: 'deny', reason: 'default' });
    expect(e.rules).toEqual([
      { ruleId: 'github', index: 0, matched: false, action: 'allow', detail: 'name matches *.github.com; port 80 not in [443]' },
      { ruleId: 'lab', index: 1, matched: false, action: 'allow', detail: 'name matches none of .lab.example; source 10.1.1.1 in 10.0.0.0/8' },
      { ruleId: 'ads', index: 2, matched: false, action: 'deny', detail: 'name matches none of ^ads[0-9]*\\.example\\.net$' },
    ]);
  });

  it('agrees with decide on the first matching rule', () => {
    const e = p.explain({ name: 'x.lab.example', port: 22, sourceIp: '::ffff:10.0.0.9' });
    expect(e.decision.ruleId).toBe('lab');
    expect(e.rules.find((r) => r.matched)?.ruleId).toBe('lab');
    expect(e.rules[1]?.detail).toBe('name matches .lab.example; source 10.0.0.9 in 10.0.0.0/8');
  });

  it('says when rules were not evaluated', () => {
    expect(p.explain({ port: 443 }).rules.every((r) => !r.matched && r.detail.startsWith('not evaluated'))).toBe(true);
    expect(p.explain({ name: 'a\u0000', port: 443 }).normalizedName).toBe('');
  });
});

describe('compiled policy facts', () => {
  it('counts names and notes which constraints are used', () => {
    const p = policy([
      { id: 'a', action: 'allow', fqdns: ['a.com', '*.a.com'], ports: [443] },
      { id: 'b', action: 'allow', fqdnRegex: ['^b\\.com$'] },
    ]);
    expect(p.nameCount).toBe(2);
    expect(p.usesPorts).toBe(true);
    expect(p.usesSources).toBe(false);
  });

  it('validates a profile that did not come from validateProfile, and refuses a bad one', () => {
    const hand = {
      apiVersion: 'portcullis/v1' as const,
      kind: 'FqdnFilterProfile' as const,
      name: 'hand',
      mode: 'enforce' as const,
      defaultAction: 'deny' as const,
      noSni: 'deny' as const,
      ech: 'deny' as const,
      rules: [{ id: 'a', action: 'allow' as const, fqdns: ['A.COM'], fqdnRegex: [], ports: [], sources: [], allowPrivate: [], allowPublicSuffixWildcard: false }],
    };
    expect(compileProfile(hand).decide({ name: 'a.com', port: 443 }).ruleId).toBe('a');
    expect(() => compileProfile({ ...hand, rules: [{ ...hand.rules[0]!, fqdns: ['*.com'] }] })).toThrow(/profile does not validate/);
  });
});

describe('a large profile', () => {
  it('finds every one of 30,000 names under the rule that lists it first, and nothing else', () => {
    const rules: RawRule[] = [];
    for (let r = 0; r < 30; r++) {
      const fqdns: string[] = [];
      for (let i = r * 1000; i < (r + 1) * 1000; i++) fqdns.push(i % 3 === 0 ? `h${i}.s${i % 7}.example` : i % 3 === 1 ? `*.h${i}.example` : `.h${i}.example`);
      // every fifth rule repeats its neighbour's first 100 names: several rules per key
      if (r % 5 === 4) fqdns.push(...(rules[r - 1]?.fqdns as string[]).slice(0, 100));
      rules.push({ id: `r${r}`, action: r % 2 ? 'allow' : 'deny', fqdns });
    }
    const p = policy(rules);
    expect(p.nameCount).toBe(30 * 1000 + 6 * 100);
    for (let i = 0; i < 30_000; i++) {
      const owner = `r${Math.floor(i / 1000)}`;
      const hit = i % 3 === 0 ? `h${i}.s${i % 7}.example` : `a.b.h${i}.example`;
      expect(p.decide({ name: hit, port: 443 }).ruleId).toBe(owner);
      expect(p.decide({ name: i % 3 === 1 ? `h${i}.example` : `x${hit}`, port: 443 }).ruleId).toBe(i % 3 === 2 ? owner : '');
    }
  });
});
