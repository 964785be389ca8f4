import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkRegexSafety, escapeBareDots } from './regex-safety';

describe('checkRegexSafety', () => {
  const accepted = [
    '^ads[0-9]*\\.example\\.net$',
    '^.*\\.example\\.com$',
    '^[a-z0-9-]+\\.example\\.com$',
    '^(www|api)\\.example\\.com$',
    '^(www\\.)?example\\.com$',
    '^([a-z0-9-]+\\.)*cdn[0-9]+\\.example\\.com$', // delimited repetition
    '^[a-z]+(\\.[a-z]+)*$', // delimited, the delimiter opening the next round
    '^([^.]+\\.)+example\\.com$',
    '^.*foo.*$', // the last .* runs into the end anchor
    '^a{2,5}\\.b$',
    '\\bx\\.com$',
    '^(?:ab)*$',
    '^(?<label>[a-z]+)\\.com$',
  ];
  it.each(accepted)('accepts %s', (p) => {
    expect(checkRegexSafety(p)).toEqual({ ok: true });
  });

  const refused: [string, RegExp][] = [
    ['(a+)+$', /nested quantifiers/],
    ['^(a*)*$', /nested quantifiers/],
    ['^(a+)*b$', /nested quantifiers/],
    ['^(\\d+)*$', /nested quantifiers/],
    ['^(a|a)*$', /alternation inside a repeated group/],
    ['^(a|aa)+$', /alternation inside a repeated group/],
    ['^((ab)?c)*$', /quantified group inside a repeated group/],
    ['^(a?a?\\.)*x$', /nested quantifiers/], // a? followed by a? is ambiguous
    ['^([a-z]+[a-z]+\\.)*$', /nested quantifiers/],
    ['^(\\w+)\\1$', /back-references/],
    ['^(?<n>a)\\k<n>$', /back-references/],
    ['^(?=a).*$', /lookarounds/],
    ['^(?!a).*$', /lookarounds/],
    ['^.*(?<=a)$', /lookarounds/],
    ['^(?<!a)b$', /lookarounds/],
    ['^.*a.*b.*c$', /unconstrained repetitions/],
    ['^[a-z]*[a-z]*[a-z]*$', /unconstrained repetitions/],
    ['^(x\\.)*(y\\.)*z$', /unconstrained repetitions/],
    [`^${'a?'.repeat(10)}$`, /optional parts/],
    [`^${'a'.repeat(600)}$`, /at most 512/],
  ];
  it.each(refused)('refuses %s', (p, message) => {
    const r = checkRegexSafety(p);
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(message);
  });

  it('accepts a delimited group inside a plain group', () => {
    expect(checkRegexSafety('^(?:(?:[a-z]+)\\.)+$')).toEqual({ ok: true });
  });

  it('refused shapes really are slow, accepted ones are not (why the rule exists)', () => {
    const evil = `${'a'.repeat(22)}!`;
    const time = (re: RegExp): number => {
      const t = performance.now();
      re.test(evil);
      return performance.now() - t;
    };
    expect(time(/^(a|a)*$/)).toBeGreaterThan(20);
    expect(time(/^([a-z]+\.)*$/)).toBeLessThan(20);
    const long = `${'a.'.repeat(120)}!`;
    const t = performance.now();
    /^([a-z0-9-]+\.)*cdn[0-9]+\.example\.com$/i.test(long);
    expect(performance.now() - t).toBeLessThan(20);
  });
});

describe('escapeBareDots', () => {
  const table: [string, string | undefined][] = [
    ['^ads.example.net$', '^ads\\.example\\.net$'],
    ['^.*\\.example\\.com$', undefined],
    ['^a.+b$', undefined],
    ['^[.]x$', undefined],
    ['^a\\.b.c$', '^a\\.b\\.c$'],
  ];
  it.each(table)('%s -> %s', (p, fixed) => {
    expect(escapeBareDots(p)).toBe(fixed);
  });
});

describe('what the check accepts stays fast on hostile names', () => {
  const { seq } = fc.letrec<{ seq: string; atom: string }>((tie) => ({
    atom: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constantFrom('a', 'b', '\\.', '.', '[a-z]', '[^.]', '-'),
      tie('seq').map((s) => `(${s})`),
      fc.tuple(tie('seq'), tie('seq')).map(([x, y]) => `(${x}|${y})`),
    ),
    seq: fc
      .array(fc.tuple(tie('atom'), fc.constantFrom('', '', '*', '+', '?', '{1,3}')), { minLength: 1, maxLength: 4 })
      .map((items) => items.map(([a, q]) => a + q).join('')),
  }));
  const hostile = [`${'a'.repeat(250)}!`, `${'a.'.repeat(125)}!`, `${'ab'.repeat(125)}!`, `${'a-'.repeat(125)}.`, `${'a'.repeat(125)}.${'b'.repeat(120)}`];

  it('never takes long on a 250-character name', () => {
    fc.assert(
      fc.property(seq, (body) => {
        const pattern = `^${body}$`;
        try {
          new RegExp(pattern);
        } catch {
          return;
        }
        if (!checkRegexSafety(pattern).ok) return;
        const re = new RegExp(`^(?:${pattern})$`, 'i');
        const t = performance.now();
        for (const h of hostile) re.test(h);
        expect(performance.now() - t, pattern).toBeLessThan(250);
      }),
      { numRuns: 400 },
    );
  });
});
