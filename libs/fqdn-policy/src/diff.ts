// What changed between two profiles, rule by rule (matched by id), for the admin API's dry run and
// history. Names, patterns, ports and CIDRs are compared as sets: their order inside a rule does not
// change a decision. Rule order does, so a rule whose position relative to the others changed is "moved".
import type { Profile, Rule, RuleChange } from './types';

export const PROFILE_ID = '(profile)';
const SHOWN = 3;

function summarise(rule: Rule): string {
  const parts: string[] = [rule.action];
  const names = [...rule.fqdns, ...rule.fqdnRegex.map((r) => `/${r}/`)];
  if (names.length > 0) parts.push(names.length <= SHOWN ? names.join(', ') : `${names.slice(0, SHOWN).join(', ')} and ${names.length - SHOWN} more`);
  else parts.push('any name');
  if (rule.ports.length > 0) parts.push(`ports ${rule.ports.join(', ')}`);
  if (rule.sources.length > 0) parts.push(`from ${rule.sources.join(', ')}`);
  return parts.join(' ');
}

function setChange(label: string, from: readonly (string | number)[], to: readonly (string | number)[]): string | undefined {
  const a = new Set(from);
  const b = new Set(to);
  const added = [...b].filter((x) => !a.has(x));
  const removed = [...a].filter((x) => !b.has(x));
  if (added.length === 0 && removed.length === 0) return undefined;
  const list = (xs: (string | number)[]): string => (xs.length <= SHOWN ? xs.join(', ') : `${xs.slice(0, SHOWN).join(', ')} and ${xs.length - SHOWN} more`);
  const bits: string[] = [];
  if (added.length > 0) bits.push(`+${added.length} (${list(added)})`);
  if (removed.length > 0) bits.push(`-${removed.length} (${list(removed)})`);
  return `${label} ${bits.join(' ')}`;
}

function ruleDiff(a: Rule, b: Rule): string[] {
  const out: string[] = [];
  if (a.action !== b.action) out.push(`action ${a.action} -> ${b.action}`);
  for (const key of ['fqdns', 'fqdnRegex', 'ports', 'sources', 'allowPrivate'] as const) {
    const c = setChange(key, a[key], b[key]);
    if (c !== undefined) out.push(c);
  }
  if (a.allowPublicSuffixWildcard !== b.allowPublicSuffixWildcard) out.push(`allowPublicSuffixWildcard ${a.allowPublicSuffixWildcard} -> ${b.allowPublicSuffixWildcard}`);
  return out;
}

/** Positions (in `seq`) of one longest strictly increasing subsequence. O(n log n). */
function longestIncreasing(seq: number[]): Set<number> {
  const tails: number[] = []; // index into seq of the smallest tail of each length
  const prev = new Array<number>(seq.length).fill(-1);
  for (let i = 0; i < seq.length; i++) {
    const v = seq[i] as number;
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((seq[tails[mid] as number] as number) < v) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[i] = tails[lo - 1] as number;
    tails[lo] = i;
  }
  const keep = new Set<number>();
  for (let i = tails.length > 0 ? (tails[tails.length - 1] as number) : -1; i >= 0; i = prev[i] as number) keep.add(i);
  return keep;
}

export function diffProfiles(from: Profile | undefined, to: Profile): RuleChange[] {
  const out: RuleChange[] = [];
  if (from === undefined) {
    out.push({ ruleId: PROFILE_ID, change: 'added', detail: `profile ${to.name}: mode ${to.mode}, defaultAction ${to.defaultAction}, noSni ${to.noSni}, ech ${to.ech}, ${to.rules.length} rules` });
    to.rules.forEach((r, i) => out.push({ ruleId: r.id, change: 'added', detail: `added at position ${i}: ${summarise(r)}` }));
    return out;
  }
  for (const key of ['name', 'mode', 'defaultAction', 'noSni', 'ech'] as const) {
    if (from[key] !== to[key]) out.push({ ruleId: PROFILE_ID, change: 'modified', detail: `${key} ${from[key]} -> ${to[key]}` });
  }
  const fromIndex = new Map(from.rules.map((r, i) => [r.id, i]));
  const toIds = new Set(to.rules.map((r) => r.id));
  // rules kept on both sides, in the new order, with their old positions; those off the longest
  // increasing run of old positions are the ones that moved relative to the rest
  const kept = to.rules.filter((r) => fromIndex.has(r.id));
  const inPlace = longestIncreasing(kept.map((r) => fromIndex.get(r.id) as number));
  const moved = new Set(kept.filter((_, k) => !inPlace.has(k)).map((r) => r.id));
  to.rules.forEach((r, i) => {
    const old = fromIndex.get(r.id);
    if (old === undefined) {
      out.push({ ruleId: r.id, change: 'added', detail: `added at position ${i}: ${summarise(r)}` });
      return;
    }
    const changes = ruleDiff(from.rules[old] as Rule, r);
    if (changes.length > 0) out.push({ ruleId: r.id, change: 'modified', detail: changes.join('; ') });
    if (moved.has(r.id)) out.push({ ruleId: r.id, change: 'moved', detail: `moved from position ${old} to ${i}` });
  });
  from.rules.forEach((r, i) => {
    if (!toIds.has(r.id)) out.push({ ruleId: r.id, change: 'removed', detail: `removed from position ${i}: ${summarise(r)}` });
  });
  return out;
}
