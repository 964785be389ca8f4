// decide checks a name in the same backward pass that looks it up, and asks normalizeName only about a
// name that pass does not accept. The pass must never accept a name normalizeName would refuse or change:
// normalizeName is watched here, so a decision made without it can be held against what it would have said.
import fc from 'fast-check';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import * as sniff from '@portcullis/sniff';
import type * as Sniff from '@portcullis/sniff';
import { compileProfile, validateProfile, type CompiledPolicy, type Profile } from './index';

const calls = vi.hoisted(() => ({ n: 0 }));
vi.mock('@portcullis/sniff', async (importOriginal) => {
  const real = await importOriginal<typeof Sniff>();
  return {
    ...real,
    normalizeName: (raw: string) => {
      calls.n++;
      return real.normalizeName(raw);
    },
  };
});

function policy(rules: Record<string, unknown>[]): CompiledPolicy | undefined {
  const r = validateProfile({ apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 'names', defaultAction: 'deny', noSni: 'deny', rules });
  return r.ok ? compileProfile(r.profile as Profile) : undefined;
}

// the rule matches any name on port 443: a decision by it means the name was taken as valid
const anyName = policy([{ id: 'any', action: 'allow', ports: [443] }]) as CompiledPolicy;

/** decide, and whether it asked normalizeName. */
function decided(p: CompiledPolicy, name: string): { reason: string; ruleId: string; askedNormalizeName: boolean } {
  const before = calls.n;
  const d = p.decide({ name, port: 443 });
  return { reason: d.reason, ruleId: d.ruleId, askedNormalizeName: calls.n !== before };
}

// Characters the pass must treat with care: upper case, '_', '-', '.', ':', a space, NUL, and non-ASCII
// letters, two of which (U+0130, U+212A) lower-case to ASCII letters.
const char = fc.constantFrom(...'abkxyz0189-_.AKXZé: \u0000\u0130\u212a'.split(''));
const digits = fc.string({ unit: fc.constantFrom(...'0123456789'.split('')), minLength: 1, maxLength: 4 });
const label = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: char, minLength: 0, maxLength: 8 }) },
  { weight: 2, arbitrary: fc.constantFrom('com', 'example', 'a', 'x-y', '_srv', 'xn--bcher-kva', 'XN--BCHER-KVA', 'xn--zz', '-a', 'a-', '0x', '0xg', '0x1f', '0X1F', '0xfG') },
  { weight: 1, arbitrary: digits },
  // 62..65 characters around the 63-character limit, with an odd character at either end now and then
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 60, max: 63 }), char, char).map(([n, a, b]) => `${a}${'q'.repeat(n)}${b}`) },
);
const suffix = fc.constantFrom('', '', '', '.', '..');
const shortName = fc.tuple(fc.array(label, { minLength: 0, maxLength: 5 }), suffix).map(([ls, s]) => ls.join('.') + s);
// 251..256 characters around the 253-character limit: three 63-character labels and one of the rest
const longName = fc
  .tuple(fc.integer({ min: 251, max: 256 }), fc.constantFrom('com', 'Com', '123', 'c_m'), suffix)
  .map(([total, tld, s]) => {
    const fill = total - 3 * 64 - tld.length - 1;
    return [...Array.from({ length: 3 }, () => 'a'.repeat(63)), 'b'.repeat(Math.max(fill, 1)), tld].join('.') + s;
  });
const mixedCase = fc
  .tuple(fc.domain(), fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }), suffix)
  .map(([d, up, s]) => [...d].map((c, i) => (up[i % 64] ? c.toUpperCase() : c)).join('') + s);
const name = fc.oneof(shortName, longName, mixedCase, fc.domain(), fc.string({ maxLength: 40 }));

describe('decide: the one-pass name check', () => {
  beforeEach(() => {
    calls.n = 0;
  });

  it('never accepts a name normalizeName would refuse or change', () => {
    fc.assert(
      fc.property(name, (raw) => {
        if (raw === '') return;
        const n = sniff.normalizeName(raw);
        const d = decided(anyName, raw);
        expect(d.reason, raw).toBe(n.ok ? 'rule' : 'invalid-name');
        if (!d.askedNormalizeName) expect(n, raw).toEqual({ ok: true, name: raw.endsWith('.') ? raw.slice(0, -1) : raw });
      }),
      { numRuns: 20_000 },
    );
  });

  it('matches the normalised name, whichever way it got there', () => {
    fc.assert(
      fc.property(name, (raw) => {
        const n = sniff.normalizeName(raw);
        if (!n.ok) return;
        const parent = n.name.slice(n.name.indexOf('.') + 1);
        const escaped = n.name.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
        const profiles = [
          [{ id: 'exact', action: 'allow', fqdns: [n.name] }],
          [{ id: 'wildcard', action: 'allow', fqdns: [`*.${parent}`], allowPublicSuffixWildcard: true }],
          [{ id: 'regex', action: 'allow', fqdnRegex: [`^${escaped}$`] }],
        ];
        for (const rules of profiles) {
          // some valid wire names are not valid rules (an A-label that is not punycode, a bare label under "*.")
          const p = n.name.includes('.') || rules[0]?.id !== 'wildcard' ? policy(rules) : undefined;
          if (p) expect(decided(p, raw).ruleId, `${raw} under ${JSON.stringify(rules)}`).toBe(rules[0]?.id);
        }
      }),
      { numRuns: 3_000 },
    );
  });

  it('decides a canonical name without normalizeName, and the rest with it', () => {
    const plain = ['example.com', 'a_b.c-d.example', 'xn--bcher-kva.de', 'x.com.', 'a.0xg', 'localhost', `${'a'.repeat(63)}.com`, `${'a.'.repeat(126)}b`];
    for (const raw of plain) expect(decided(anyName, raw), raw).toEqual({ reason: 'rule', ruleId: 'any', askedNormalizeName: false });
    const unusual = ['Example.com', 'x.com..', 'a..b', '.a', '-a.com', 'a-.com', 'a.123', '127.0.0.1', 'a.0x7f', 'a.0x', 'bücher.de', 'a b.com', `${'a'.repeat(64)}.com`, `${'a.'.repeat(126)}bc`];
    for (const raw of unusual) expect(decided(anyName, raw).askedNormalizeName, raw).toBe(true);
  });
});
