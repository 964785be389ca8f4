import { describe, expect, it } from 'vitest';
import { diffProfiles, validateProfile, type Profile } from './index';

function profile(rules: Record<string, unknown>[], top: Record<string, unknown> = {}): Profile {
  const r = validateProfile({ apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: 'p', ...top, rules });
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.profile;
}

const a = { id: 'a', action: 'allow', fqdns: ['a.com'] };
const b = { id: 'b', action: 'allow', fqdns: ['b.com'] };
const c = { id: 'c', action: 'deny', fqdns: ['c.com'] };
const d = { id: 'd', action: 'deny', fqdns: ['d.com'] };

describe('diffProfiles', () => {
  it('no change, no entries', () => {
    expect(diffProfiles(profile([a, b]), profile([a, b]))).toEqual([]);
  });

  it('a first profile: the profile and every rule added', () => {
    expect(diffProfiles(undefined, profile([a, b]))).toEqual([
      { ruleId: '(profile)', change: 'added', detail: 'profile p: mode enforce, defaultAction deny, noSni deny, ech deny, 2 rules' },
      { ruleId: 'a', change: 'added', detail: 'added at position 0: allow a.com' },
      { ruleId: 'b', change: 'added', detail: 'added at position 1: allow b.com' },
    ]);
  });

  it('profile-level settings', () => {
    expect(diffProfiles(profile([a]), profile([a], { mode: 'monitor', defaultAction: 'allow', noSni: 'allow', ech: 'allow' }))).toEqual([
      { ruleId: '(profile)', change: 'modified', detail: 'mode enforce -> monitor' },
      { ruleId: '(profile)', change: 'modified', detail: 'defaultAction deny -> allow' },
      { ruleId: '(profile)', change: 'modified', detail: 'noSni deny -> allow' },
      { ruleId: '(profile)', change: 'modified', detail: 'ech deny -> allow' },
    ]);
  });

  it('added and removed rules', () => {
    expect(diffProfiles(profile([a, b]), profile([a, c]))).toEqual([
      { ruleId: 'c', change: 'added', detail: 'added at position 1: deny c.com' },
      { ruleId: 'b', change: 'removed', detail: 'removed from position 1: allow b.com' },
    ]);
  });

  it('inserting a rule at the top moves nothing', () => {
    expect(diffProfiles(profile([a, b, c]), profile([d, a, b, c]))).toEqual([{ ruleId: 'd', change: 'added', detail: 'added at position 0: deny d.com' }]);
  });

  it('reordering: only the rule that changed place is moved', () => {
    expect(diffProfiles(profile([a, b, c, d]), profile([a, c, d, b]))).toEqual([{ ruleId: 'b', change: 'moved', detail: 'moved from position 1 to 3' }]);
  });

  it('modified fields, compared as sets', () => {
    const from = profile([{ ...a, fqdns: ['a.com', 'x.a.com'], ports: [443] }]);
    const to = profile([{ ...a, action: 'deny', fqdns: ['x.a.com', 'a.com', '*.a.com'], ports: [443, 22], sources: ['10.0.0.0/8'] }]);
    expect(diffProfiles(from, to)).toEqual([
      { ruleId: 'a', change: 'modified', detail: 'action allow -> deny; fqdns +1 (*.a.com); ports +1 (22); sources +1 (10.0.0.0/8)' },
    ]);
    expect(diffProfiles(from, profile([{ ...a, fqdns: ['x.a.com', 'a.com'], ports: [443] }]))).toEqual([]);
  });

  it('a rule both modified and moved gets both entries', () => {
    expect(diffProfiles(profile([a, b]), profile([{ ...b, fqdns: ['b2.com'] }, a]))).toEqual([
      { ruleId: 'b', change: 'modified', detail: 'fqdns +1 (b2.com) -1 (b.com)' },
      { ruleId: 'b', change: 'moved', detail: 'moved from position 1 to 0' },
    ]);
  });

  it('summarises long lists', () => {
    const many = Array.from({ length: 10 }, (_, i) => `n${i}.com`);
    const [entry] = diffProfiles(profile([a]), profile([{ ...a, fqdns: ['a.com', ...many] }]));
    expect(entry?.detail).toBe('fqdns +10 (n0.com, n1.com, n2.com and 7 more)');
  });
});
