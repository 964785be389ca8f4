import { describe, expect, it } from 'vitest';
import { everything, good, idn, shadowed, unescapedDot } from './fixtures/profiles';
import { parseProfileText, validateProfile, type ParseResult, type ValidationProblem } from './index';

function problems(r: ParseResult): ValidationProblem[] {
  if (r.ok) throw new Error('expected the profile to be refused');
  return r.problems;
}

function byPath(ps: ValidationProblem[], path: string): ValidationProblem[] {
  return ps.filter((p) => p.path === path);
}

describe('a good profile', () => {
  it('validates, fills defaults and normalises', () => {
    const r = parseProfileText(good);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.warnings).toEqual([]);
    expect(r.profile.rules[0]).toEqual({
      id: 'github',
      action: 'allow',
      fqdns: ['github.com', '*.github.com'],
      fqdnRegex: [],
      ports: [443, 22],
      sources: ['10.0.0.0/8'],
      allowPrivate: [],
      allowPublicSuffixWildcard: false,
    });
    expect(Object.isFrozen(r.profile)).toBe(true);
    expect(Object.isFrozen(r.profile.rules[0]?.fqdns)).toBe(true);
  });

  it('fills the safe defaults', () => {
    const r = validateProfile({ apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 'min' });
    expect(r).toMatchObject({ ok: true, profile: { mode: 'enforce', defaultAction: 'deny', noSni: 'deny', ech: 'deny', rules: [] } });
  });

  it('round-trips: a validated profile, stored as JSON and read back, validates to the same profile', () => {
    const r = parseProfileText(good);
    if (!r.ok) throw new Error('bad fixture');
    const again = validateProfile(JSON.parse(JSON.stringify(r.profile)));
    expect(again).toEqual({ ok: true, profile: r.profile, warnings: [] });
  });

  it('normalises names, CIDRs and drops duplicates', () => {
    const r = validateProfile({
      apiVersion: 'portcullis/v1',
      kind: 'FqdnFilterProfile',
      name: 'n',
      rules: [{ id: 'a', action: 'allow', fqdns: ['API.Example.COM.', '*.Example.com'], sources: ['2001:DB8:0:0::/32', '192.0.2.1', '::ffff:10.0.0.0/104'], ports: [443, 443] }],
    });
    expect(r).toMatchObject({
      ok: true,
      profile: { rules: [{ fqdns: ['api.example.com', '*.example.com'], sources: ['2001:db8::/32', '192.0.2.1/32', '10.0.0.0/8'], ports: [443] }] },
    });
  });
});

describe('a broken profile: every problem at once, with path and fix', () => {
  const ps = problems(parseProfileText(everything));

  const expected: [path: string, message: RegExp, fix?: RegExp][] = [
    ['apiVersion', /must be portcullis\/v1/, /write apiVersion: portcullis\/v1/],
    ['mode', /must be one of enforce, monitor/, /write mode: enforce/],
    ['defaultaction', /unknown key "defaultaction"/, /did you mean defaultAction\?/],
    ['noSni', /must be one of allow, deny/],
    // public suffixes
    ['rules[0].fqdns[0]', /wildcard over the public suffix "com"/, /allowPublicSuffixWildcard: true/],
    ['rules[0].fqdns[1]', /public suffix "co.uk"/],
    ['rules[0].fqdns[2]', /public suffix "github.io"/],
    ['rules[0].fqdns[4]', /public suffix "herokuapp.com"/],
    // regex safety
    ['rules[1].fqdnRegex[0]', /nested quantifiers/, /delimited form/],
    ['rules[1].fqdnRegex[1]', /alternation inside a repeated group/],
    ['rules[1].fqdnRegex[2]', /back-references/],
    ['rules[1].fqdnRegex[3]', /lookarounds/],
    ['rules[1].fqdnRegex[5]', /not a valid regular expression/],
    // CIDRs
    ['rules[2].sources[0]', /prefix length "33"; it must be 0..32/],
    ['rules[2].sources[1]', /host bits set/, /write 10\.0\.0\.0\/8 for the network, or 10\.1\.2\.3\/32/],
    ['rules[2].sources[2]', /not an IPv4 or IPv6 address/],
    ['rules[2].sources[3]', /it must be 0..128/],
    ['rules[2].allowPrivate[0]', /leading zero/, /write 10\.0\.0\.1/],
    // ports
    ['rules[3].ports[0]', /whole number 1..65535/],
    ['rules[3].ports[1]', /whole number 1..65535/],
    ['rules[3].ports[2]', /must be a number/, /write 443 without quotes/],
    ['rules[3].ports[3]', /whole number 1..65535/],
    ['rules[3].ports[4]', /port ranges/],
    // ids, keys, shapes
    ['rules[4].id', /duplicate id "psl"; first used by rules\[0\]/],
    ['rules[5].fqnds', /unknown key "fqnds"/, /did you mean fqdns\?/],
    ['rules[5].fqdns[0]', /is a URL/, /write k\.example\.com/],
    ['rules[5].fqdns[1]', /carries a port/, /write k\.example\.com and add ports: \[8443\]/],
    ['rules[5].fqdns[2]', /whole leftmost label/],
    ['rules[5].fqdns[3]', /is an IP address/],
    ['rules[5].fqdns[4]', /surrounding spaces/, /write s\.example\.com/],
    ['rules[6].id', /id is required/, /add id: rule-6/],
    ['rules[6].action', /must be one of allow, deny/],
    ['rules[6].fqdns', /must be a list/, /write fqdns: \["single\.example\.com"\]/],
    ['rules[7]', /matches every connection/, /set defaultAction: allow/],
  ];

  it.each(expected)('%s', (path, message, fix) => {
    const here = byPath(ps, path);
    expect(here.length, `problems at ${path}: ${JSON.stringify(ps.map((p) => p.path))}`).toBeGreaterThan(0);
    expect(here.some((p) => message.test(p.message))).toBe(true);
    if (fix) expect(here.some((p) => fix.test(p.fix ?? ''))).toBe(true);
  });

  it('lists nothing it should not', () => {
    const paths = new Set(expected.map(([p]) => p));
    expect(ps.filter((p) => !paths.has(p.path))).toEqual([]);
    // the good entries beside the bad ones are not complained about
    expect(byPath(ps, 'rules[0].fqdns[3]')).toEqual([]);
    expect(byPath(ps, 'rules[1].fqdnRegex[4]')).toEqual([]);
  });

  it('gives the YAML line of each problem', () => {
    expect(byPath(ps, 'rules[3].ports[2]')[0]?.line).toBe(23);
  });
});

describe('warnings', () => {
  it('accepts Unicode names with the A-label form as the fix', () => {
    const r = parseProfileText(idn);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.profile.rules[0]?.fqdns).toEqual(['xn--80ak6aa92e.com', '*.xn--bcher-kva.de']);
    expect(r.warnings).toEqual([
      expect.objectContaining({ path: 'rules[0].fqdns[0]', message: expect.stringContaining('A-label form xn--80ak6aa92e.com'), fix: 'write xn--80ak6aa92e.com' }),
      expect.objectContaining({ path: 'rules[0].fqdns[1]', fix: 'write *.xn--bcher-kva.de' }),
    ]);
  });

  it('warns about unescaped dots in regexes (the Cisco trap)', () => {
    const r = parseProfileText(unescapedDot);
    expect(r.ok).toBe(true);
    expect(r.warnings).toEqual([expect.objectContaining({ path: 'rules[0].fqdnRegex[0]', fix: 'write ^ads\\.example\\.net$' })]);
  });

  it('warns about names an earlier unconstrained rule always decides', () => {
    const r = parseProfileText(shadowed);
    expect(r.ok).toBe(true);
    expect(r.warnings.map((w) => w.path)).toEqual(['rules[1].fqdns[0]', 'rules[1].fqdns[1]', 'rules[1].fqdns[2]', 'rules[2].fqdns[0]']);
    expect(r.warnings[0]?.message).toMatch(/rules\[0\] \(broad\) already matches it/);
  });

  it('allowPublicSuffixWildcard lets a rule wildcard a public suffix, and says when it is unused', () => {
    const r = validateProfile({
      apiVersion: 'portcullis/v1',
      kind: 'FqdnFilterProfile',
      name: 'p',
      rules: [
        { id: 'pages', action: 'allow', fqdns: ['*.github.io'], allowPublicSuffixWildcard: true },
        { id: 'useless', action: 'allow', fqdns: ['x.example.com'], allowPublicSuffixWildcard: true },
        { id: 'deny-priv', action: 'deny', fqdns: ['y.example.com'], allowPrivate: ['10.0.0.0/8'] },
      ],
    });
    expect(r.ok).toBe(true);
    expect(r.warnings.map((w) => w.path)).toEqual(['rules[1].allowPublicSuffixWildcard', 'rules[2].allowPrivate']);
  });
});

describe('shapes', () => {
  const cases: [string, unknown, string][] = [
    ['not a mapping', ['a'], ''],
    ['rules not a list', { apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 'x', rules: 'github.com' }, 'rules'],
    ['rule not a mapping', { apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 'x', rules: ['github.com'] }, 'rules[0]'],
    ['numeric id', { apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 'x', rules: [{ id: 3, action: 'allow', fqdns: ['a.com'] }] }, 'rules[0].id'],
    ['missing name', { apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile' }, 'name'],
    ['missing kind', { apiVersion: 'portcullis/v1', name: 'x' }, 'kind'],
    ['null list', { apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 'x', rules: [{ id: 'a', action: 'allow', fqdns: null }] }, 'rules[0].fqdns'],
    ['regex with slashes', { apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 'x', rules: [{ id: 'a', action: 'allow', fqdnRegex: ['/^a\\.com$/i'] }] }, 'rules[0].fqdnRegex[0]'],
    ['non-ASCII regex', { apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 'x', rules: [{ id: 'a', action: 'allow', fqdnRegex: ['^bücher\\.de$'] }] }, 'rules[0].fqdnRegex[0]'],
    ['bare star', { apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 'x', rules: [{ id: 'a', action: 'allow', fqdns: ['*'] }] }, 'rules[0].fqdns[0]'],
    ['string boolean', { apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 'x', rules: [{ id: 'a', action: 'allow', fqdns: ['a.com'], allowPublicSuffixWildcard: 'true' }] }, 'rules[0].allowPublicSuffixWildcard'],
  ];
  it.each(cases)('%s is refused at %j', (_, raw, path) => {
    const ps = problems(validateProfile(raw));
    expect(ps.map((p) => p.path)).toContain(path);
  });

  it('accepts a rule with only ports or sources (it matches every name)', () => {
    expect(validateProfile({ apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 'x', rules: [{ id: 'smtp', action: 'deny', ports: [25] }] }).ok).toBe(true);
  });
});

describe('parseProfileText', () => {
  it('reads JSON on a fast path with the same result as YAML', () => {
    const y = parseProfileText(good);
    if (!y.ok) throw new Error('bad fixture');
    expect(parseProfileText(JSON.stringify(y.profile))).toEqual({ ok: true, profile: y.profile, warnings: [] });
  });

  it('refuses duplicate keys in JSON as YAML does', () => {
    const json = '{"apiVersion":"portcullis/v1","kind":"FqdnFilterProfile","name":"x","defaultAction":"deny","rules":[{"id":"a","action":"deny","action":"allow","fqdns":["a.com"]}],"defaultAction":"allow"}';
    const ps = problems(parseProfileText(json));
    expect(ps.map((p) => p.path)).toEqual(['rules[0].action', 'defaultAction']);
    const yaml = 'apiVersion: portcullis/v1\nkind: FqdnFilterProfile\nname: x\ndefaultAction: deny\ndefaultAction: allow\n';
    expect(problems(parseProfileText(yaml))[0]?.message).toMatch(/line 5.*unique/);
  });

  it('reports YAML syntax errors with their line', () => {
    const ps = problems(parseProfileText('apiVersion: portcullis/v1\nrules:\n  - id: a\n   action: [allow\n'));
    expect(ps[0]?.message).toMatch(/^line \d+, column \d+: /);
  });

  it('refuses empty text and broken JSON', () => {
    expect(problems(parseProfileText('  \n'))[0]?.message).toBe('the profile is empty');
    expect(problems(parseProfileText('{"apiVersion": "portcullis/v1",')).length).toBeGreaterThan(0);
  });

  it('stops alias bombs', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)].join('\n');
    expect(parseProfileText(bomb).ok).toBe(false);
  });
});
