import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { NameProblem } from './names';
import { checkNameForTest, normalizeName, normalizeRuleName } from './names';

const label63 = 'a'.repeat(63);
const label64 = 'a'.repeat(64);
/** 63+1+63+1+63+1+61 = 253 characters */
const name253 = `${label63}.${label63}.${label63}.${'b'.repeat(61)}`;
const name254 = `${name253}c`;

type Row = [input: string, expected: string | NameProblem];
const ok = (name: string): string => `=${name}`;

// Expected: "=name" for success, otherwise the problem code.
const wire: Row[] = [
  ['example.com', ok('example.com')],
  ['Example.COM', ok('example.com')],
  ['EXAMPLE.test', ok('example.test')],
  ['x.com.', ok('x.com')],
  ['x.com..', 'empty-label'],
  ['.x.com', 'empty-label'],
  ['x..com', 'empty-label'],
  ['.', 'empty'],
  ['', 'empty'],
  ['..', 'empty-label'],
  ['com', ok('com')],
  ['a_b.example.com', ok('a_b.example.com')],
  ['_dmarc.example.com', ok('_dmarc.example.com')],
  ['r3---sn-abc.googlevideo.com', ok('r3---sn-abc.googlevideo.com')],
  ['-a.com', 'hyphen'],
  ['a-.com', 'hyphen'],
  ['1x.com', ok('1x.com')],
  ['123.example.com', ok('123.example.com')],
  // Unicode never passes on the wire: RFC 6066 wants A-labels.
  ['bücher.de', 'unicode'],
  ['\u212Aelvin.com', 'unicode'], // KELVIN SIGN lowercases to "k" in Unicode: must not turn into kelvin.com
  ['e\u0301xample.com', 'unicode'],
  ['\u00e9xample.com', 'unicode'],
  ['ex\u00adample.com', 'unicode'], // soft hyphen
  ['１２７.０.０.１', 'unicode'],
  ['xn--bcher-kva.de', ok('xn--bcher-kva.de')],
  ['XN--BCHER-KVA.DE', ok('xn--bcher-kva.de')],
  ['xn--zz.com', ok('xn--zz.com')], // the wire is not validated as punycode; rules are
  // control characters and spaces
  ['a\u0000b.com', 'bad-char'],
  ['example.com\u0000', 'bad-char'],
  ['example.com\u0000.evil.test', 'bad-char'],
  ['\u0000', 'bad-char'],
  ['a b.com', 'bad-char'],
  [' example.com', 'bad-char'],
  ['example.com ', 'bad-char'],
  ['exa\tmple.com', 'bad-char'],
  ['example.com\r\n', 'bad-char'],
  ['exa\u007fmple.com', 'bad-char'],
  ['*.example.com', 'bad-char'],
  ['exa/mple.com', 'bad-char'],
  ['user@example.com', 'bad-char'],
  ['example.com:443', 'bad-char'],
  ['exa%41mple.com', 'bad-char'],
  // IPv4 in every form a URL parser accepts
  ['1.2.3.4', 'ip-literal'],
  ['127.0.0.1', 'ip-literal'],
  ['127.0.0.1.', 'ip-literal'],
  ['0.0.0.0', 'ip-literal'],
  ['255.255.255.255', 'ip-literal'],
  ['127.1', 'ip-literal'],
  ['0x7f.1', 'ip-literal'],
  ['0X7F.0.0.1', 'ip-literal'],
  ['0177.0.0.1', 'ip-literal'],
  ['2130706433', 'ip-literal'],
  ['0x7f000001', 'ip-literal'],
  // ends in a number but is not a valid IPv4: still never a domain
  ['256.1.1.1', 'bad-char'],
  ['1.2.3.4.5', 'bad-char'],
  ['08.1.2.3', 'bad-char'],
  ['example.123', 'bad-char'],
  ['example.0x1f', 'bad-char'],
  ['4294967296', 'bad-char'],
  // IPv6
  ['::1', 'ip-literal'],
  ['[::1]', 'ip-literal'],
  ['2001:db8::1', 'ip-literal'],
  ['::ffff:1.2.3.4', 'ip-literal'],
  ['fe80::1%eth0', 'ip-literal'],
  ['[fe80::1%25eth0]', 'ip-literal'],
  // lengths
  [`${label63}.com`, ok(`${label63}.com`)],
  [`${label64}.com`, 'label-too-long'],
  [`${label63}`, ok(label63)],
  [label64, 'label-too-long'],
  [name253, ok(name253)],
  [`${name253}.`, ok(name253)],
  [name254, 'too-long'],
  [`${name254}.`, 'too-long'],
  ['a.'.repeat(126) + 'b', ok('a.'.repeat(126) + 'b')],
  ['a.'.repeat(127), ok('a.'.repeat(126) + 'a')], // 254 characters with the trailing dot
  ['a.'.repeat(127) + 'b', 'too-long'],
];

const rules: Row[] = [
  ['Example.COM', ok('example.com')],
  ['x.com.', ok('x.com')],
  ['x.com..', 'empty-label'],
  ['bücher.de', ok('xn--bcher-kva.de')],
  ['Bücher.DE', ok('xn--bcher-kva.de')],
  ['bücher.de.', ok('xn--bcher-kva.de')],
  ['bu\u0308cher.de', ok('xn--bcher-kva.de')], // decomposed ü
  ['\u00e9xample.com', ok('xn--xample-9ua.com')], // composed é
  ['e\u0301xample.com', ok('xn--xample-9ua.com')], // decomposed é
  ['\u212Aelvin.com', ok('kelvin.com')], // KELVIN SIGN maps to k under UTS #46
  ['ex\u00adample.com', ok('example.com')], // soft hyphen is ignored by UTS #46
  ['faß.de', ok('xn--fa-hia.de')], // non-transitional, as browsers do
  ['例え.テスト', ok('xn--r8jz45g.xn--zckzah')],
  ['例え。テスト', ok('xn--r8jz45g.xn--zckzah')], // ideographic full stop
  ['xn--bcher-kva.de', ok('xn--bcher-kva.de')],
  ['XN--BCHER-KVA.de', ok('xn--bcher-kva.de')],
  ['xn--zz.com', 'unicode'], // not valid punycode
  ['a_b.xn--bcher-kva.de', ok('a_b.xn--bcher-kva.de')],
  ['１２７.０.０.１', 'ip-literal'], // fullwidth digits map to an address
  ['127.0.0.1', 'ip-literal'],
  ['[::1]', 'ip-literal'],
  ['bü\u0000cher.de', 'bad-char'],
  ['bü cher.de', 'bad-char'],
  ['ü.com\u0000', 'bad-char'],
  ['ü..com', 'empty-label'],
  [`ü${label63}.com`, 'label-too-long'],
  ['a\u0000b.com', 'bad-char'],
  ['', 'empty'],
  [name253, ok(name253)],
  [name254, 'too-long'],
];

/** it.each title: the input, shortened and escaped */
const titled = (rows: Row[]): [string, string, string][] => rows.map(([i, e]) => [JSON.stringify(i.length > 40 ? `${i.slice(0, 20)}…(${i.length})` : i), e, i]);

function summary(r: ReturnType<typeof normalizeName>): string {
  return r.ok ? `=${r.name}` : r.problem;
}

describe('normalizeName (names from the wire)', () => {
  it.each(titled(wire))('%s → %s', (_title, expected, input) => {
    expect(summary(normalizeName(input))).toBe(expected);
  });

  it('explains every failure in a message', () => {
    for (const [input] of wire) {
      const r = normalizeName(input);
      if (!r.ok) expect(r.message.length).toBeGreaterThan(5);
    }
  });

  it('is idempotent and never throws', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.domain(), fc.ipV4(), fc.ipV6(), fc.string({ unit: 'binary' })), (s) => {
        const r = normalizeName(s);
        if (r.ok) {
          expect(normalizeName(r.name)).toEqual(r);
          expect(r.name).toBe(r.name.toLowerCase());
          expect(r.name.length).toBeLessThanOrEqual(253);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('accepts every generated domain, lowercased', () => {
    fc.assert(
      fc.property(fc.domain(), (d) => {
        const r = normalizeName(d.toUpperCase());
        // fast-check may produce numeric TLDs; those are refused on purpose.
        if (/\.[0-9]+$/.test(d)) expect(r.ok).toBe(false);
        else expect(r).toEqual({ ok: true, name: d.toLowerCase() });
      }),
      { numRuns: 1000 },
    );
  });
});

describe('normalizeRuleName (names written in rules)', () => {
  it.each(titled(rules))('%s → %s', (_title, expected, input) => {
    expect(summary(normalizeRuleName(input))).toBe(expected);
  });

  it('flags names converted from Unicode', () => {
    expect(normalizeRuleName('bücher.de')).toEqual({ ok: true, name: 'xn--bcher-kva.de', converted: true });
    expect(normalizeRuleName('buecher.de')).toEqual({ ok: true, name: 'buecher.de' });
  });

  it('agrees with normalizeName on ASCII', () => {
    for (const [input] of wire) {
      if (/[^\x00-\x7f]/.test(input) || input.includes('xn--zz')) continue;
      expect(normalizeRuleName(input)).toEqual(normalizeName(input));
    }
  });

  it('a converted rule matches what a client sends for the same name', () => {
    fc.assert(
      fc.property(fc.webSegment(), fc.constantFrom('bücher', 'пример', '例え', 'ñandú', 'straße'), (prefix, idn) => {
        const rule = normalizeRuleName(`${idn}.test`);
        expect(rule.ok).toBe(true);
        if (rule.ok) expect(normalizeName(rule.name)).toEqual({ ok: true, name: rule.name });
        void prefix;
      }),
      { numRuns: 50 },
    );
  });
});

describe('normalizeName fast path', () => {
  it('agrees with the full check on every input (random and name-shaped)', () => {
    const alphabet = fc.constantFrom(...'aAzZ09-_.x:é \u0000'.split(''));
    const label = fc.string({ unit: alphabet, maxLength: 70 });
    const nameLike = fc.array(label, { maxLength: 6 }).map((l) => l.join('.'));
    fc.assert(
      fc.property(fc.oneof(label, nameLike, fc.string({ maxLength: 300 })), (raw) => {
        expect(normalizeName(raw)).toEqual(checkNameForTest(raw));
      }),
      { numRuns: 20_000 },
    );
  });
});
