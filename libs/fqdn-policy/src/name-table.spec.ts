// The name table's packed keys: a hash match is only ever a candidate; the full key decides.
import { describe, expect, it } from 'vitest';
import { compileProfile, validateProfile } from './index';
import { filterBits, filterWord, hashName, keyEquals, NameTableBuilder } from './name-table';

// Pairs of names with the same 32-bit FNV-1a hash (found by search), one pair of different lengths
// and one of the same length, which only the character compare can tell apart.
const DIFFERENT_LENGTHS = ['h57682.example', 'h102119.example'] as const;
const SAME_LENGTH = ['h0223828.example', 'h1066415.example'] as const;

function allowOnly(fqdns: string[]) {
  const r = validateProfile({ apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 't', defaultAction: 'deny', rules: [{ id: 'a', action: 'allow', fqdns }] });
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return compileProfile(r.profile);
}

describe('name table', () => {
  it('the colliding pairs do collide', () => {
    for (const [a, b] of [DIFFERENT_LENGTHS, SAME_LENGTH]) expect(hashName(a)).toBe(hashName(b));
  });

  it('keeps two keys with the same hash apart', () => {
    const t = new NameTableBuilder(4);
    t.add(SAME_LENGTH[0], 0, true, false);
    t.add(SAME_LENGTH[1], 1, true, false);
    t.add(SAME_LENGTH[0], 2, false, true);
    expect(t.build().size).toBe(2);
  });

  it('a hash collision never makes a name match, as the whole name or as a suffix', () => {
    for (const [key, other] of [DIFFERENT_LENGTHS, SAME_LENGTH]) {
      const p = allowOnly([key, `*.${key}`]);
      expect(p.decide({ name: key, port: 443 }).reason).toBe('rule');
      expect(p.decide({ name: `x.${key}`, port: 443 }).reason).toBe('rule');
      expect(p.decide({ name: other, port: 443 }).reason).toBe('default');
      expect(p.decide({ name: `x.${other}`, port: 443 }).reason).toBe('default');
      expect(p.decide({ name: `X.${other.toUpperCase()}.`, port: 443 }).reason).toBe('default');
    }
  });

  it('with both names of a pair listed, each finds its own rule', () => {
    const r = validateProfile({
      apiVersion: 'portcullis/v1',
      kind: 'FqdnFilterProfile',
      name: 't',
      defaultAction: 'deny',
      rules: [
        { id: 'first', action: 'allow', fqdns: [SAME_LENGTH[0], `.${DIFFERENT_LENGTHS[1]}`] },
        { id: 'second', action: 'deny', fqdns: [`*.${SAME_LENGTH[1]}`, DIFFERENT_LENGTHS[0]] },
      ],
    });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const p = compileProfile(r.profile);
    const rule = (name: string): string => p.decide({ name, port: 443 }).ruleId;
    expect([SAME_LENGTH[0], SAME_LENGTH[1], `a.${SAME_LENGTH[0]}`, `a.${SAME_LENGTH[1]}`].map(rule)).toEqual(['first', '', '', 'second']);
    expect([DIFFERENT_LENGTHS[0], DIFFERENT_LENGTHS[1], `a.${DIFFERENT_LENGTHS[0]}`, `a.${DIFFERENT_LENGTHS[1]}`].map(rule)).toEqual(['second', 'first', '', 'first']);
  });

  it('keyEquals compares the length and every character', () => {
    const chars = Uint8Array.from([3, 0x61, 0x62, 0x63]);
    expect(keyEquals(chars, 0, 'abc', 0)).toBe(true);
    expect(keyEquals(chars, 0, 'x.abc', 2)).toBe(true);
    expect(keyEquals(chars, 0, 'abd', 0)).toBe(false);
    expect(keyEquals(chars, 0, 'abcd', 0)).toBe(false);
    expect(keyEquals(chars, 0, 'ab', 0)).toBe(false);
  });

  it('refuses a key that is not a normalised name (a bug upstream, not a profile problem)', () => {
    expect(() => new NameTableBuilder(1).add('bücher.de', 0, true, false)).toThrow(/ASCII/);
    expect(() => new NameTableBuilder(1).add('a'.repeat(256), 0, true, false)).toThrow(/256 characters/);
  });

  it('grows its key buffer past the first guess (1 KiB for a small table)', () => {
    const names = Array.from({ length: 40 }, (_, i) => `${'n'.repeat(60)}${i}.example`);
    const t = new NameTableBuilder(names.length);
    for (const [i, n] of names.entries()) t.add(n, i, true, false);
    const built = t.build();
    expect(built.size).toBe(40);
    expect(built.chars.length).toBe(names.reduce((sum, n) => sum + 1 + n.length, 0));
    const p = allowOnly(names);
    expect(names.every((n) => p.decide({ name: n, port: 443 }).reason === 'rule')).toBe(true);
  });

  it('the prefilter passes every key and few other names', () => {
    const t = new NameTableBuilder(20_000);
    for (let i = 0; i < 20_000; i++) t.add(`k${i}.example`, 0, true, false);
    const { filter, filterShift } = t.build();
    const passes = (name: string): boolean => {
      const h = hashName(name);
      const bits = filterBits(h);
      return ((filter[filterWord(h, filterShift)] ?? 0) & bits) === bits;
    };
    for (let i = 0; i < 20_000; i++) expect(passes(`k${i}.example`)).toBe(true);
    let falsePositives = 0;
    for (let i = 0; i < 20_000; i++) if (passes(`other${i}.example`)) falsePositives++;
    // two bits per key in one word, 8 bits per key (here 16: the filter is a power of two): about 2%
    expect(falsePositives / 20_000).toBeLessThan(0.04);
  });
});
