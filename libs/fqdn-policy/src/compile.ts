// compile: a validated profile into a decider whose per-decision cost does not grow with the number
// of names. decide: ECH -> no name -> invalid name -> first matching rule -> default. Decisions for a
// rule, the default, ECH and no-SNI are built once here and shared, so the hot path allocates nothing
// for a name already in canonical form, which match checks in the same pass that looks it up.
import { normalizeName } from '@portcullis/sniff';
import type { NameResult } from '@portcullis/sniff';
import { cidrTableContains, formatIp, parseCidr, parseIpInto } from './cidr';
import { patternMatches, type PatternKind } from './name-pattern';
import { FNV_OFFSET, FNV_PRIME, NameTableBuilder, NO_RULE, SLOT_WIDTH } from './name-table';
import type { Action, CompiledPolicy, Decision, DecisionInput, Explanation, Profile, Rule, RuleTrace } from './types';
import { isValidatedProfile, validateProfile } from './validate';

/** Thrown by compileProfile for a profile that does not validate: bad config, not a decision. */
export class PolicyCompileError extends Error {
  readonly code = 'PORTCULLIS_POLICY_INVALID';
  constructor(
    message: string,
    readonly problems: { path: string; message: string }[],
  ) {
    super(message);
    this.name = 'PolicyCompileError';
  }
}

// Imported bindings are read once into module locals: a CommonJS transpile (tsx, vitest) turns every
// read of an imported binding into a getter call, which is measurable on the per-decision path.
const normalize = normalizeName;
const OFFSET = FNV_OFFSET;
const PRIME = FNV_PRIME;
const WIDTH = SLOT_WIDTH;
const NONE = NO_RULE;
const contains = cidrTableContains;
const parseIp = parseIpInto;

const EMPTY: readonly string[] = Object.freeze([]);
const FLAG_PORTS = 1;
const FLAG_SOURCES = 2;
const MAX_CACHED_REASONS = 64;
/** match's answer for a name it leaves to normalizeName (never a rule index). */
const UNUSUAL = -1;
const MAX_NAME = 253;
const MAX_LABEL = 63;

/** Is raw[from..end], a name's last label, all digits or "0x" and hex digits (normalizeName's "ends in a number")? */
function lastLabelNumeric(raw: string, from: number, end: number): boolean {
  let i = from;
  if (end - from >= 2 && raw.charCodeAt(from) === 48 && raw.charCodeAt(from + 1) === 120) {
    for (i = from + 2; i < end; i++) {
      const c = raw.charCodeAt(i);
      if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
    }
    return true;
  }
  for (; i < end; i++) {
    const c = raw.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function splitPattern(text: string): { kind: PatternKind; base: string } {
  if (text.startsWith('*.')) return { kind: 'sub', base: text.slice(2) };
  if (text.startsWith('.')) return { kind: 'dot', base: text.slice(1) };
  return { kind: 'exact', base: text };
}

export function compileProfile(input: Profile): CompiledPolicy {
  let profile = input;
  if (!isValidatedProfile(profile)) {
    const r = validateProfile(profile);
    if (!r.ok) {
      const first = r.problems[0];
      throw new PolicyCompileError(`profile does not validate (${r.problems.length} problems${first ? `; first: ${first.path}: ${first.message}` : ''})`, r.problems);
    }
    profile = r.profile;
  }
  const { rules, mode } = profile;
  const ruleCount = rules.length;

  // per-rule constraints
  const flags = new Uint8Array(ruleCount);
  const portLists: (Int32Array | Set<number> | undefined)[] = new Array(ruleCount);
  const sourceTables: (Int32Array | undefined)[] = new Array(ruleCount);
  const scan: number[] = []; // rules checked in order: those with fqdnRegex or with no names at all
  const scanRegex: (RegExp[] | null)[] = [];
  let nameCount = 0;
  let usesPorts = false;
  let usesSources = false;
  const table = new NameTableBuilder(rules.reduce((n, r) => n + r.fqdns.length, 0));

  for (let i = 0; i < ruleCount; i++) {
    const rule = rules[i] as Rule;
    if (rule.ports.length > 0) {
      flags[i] = (flags[i] ?? 0) | FLAG_PORTS;
      portLists[i] = rule.ports.length <= 8 ? Int32Array.from(rule.ports) : new Set(rule.ports);
      usesPorts = true;
    }
    if (rule.sources.length > 0) {
      flags[i] = (flags[i] ?? 0) | FLAG_SOURCES;
      const t = new Int32Array(rule.sources.length * 8);
      rule.sources.forEach((s, k) => {
        const r = parseCidr(s);
        if (!r.ok) throw new PolicyCompileError(`rules[${i}].sources[${k}]: ${r.message}`, [{ path: `rules[${i}].sources[${k}]`, message: r.message }]);
        t.set(r.cidr.net, k * 8);
        t.set(r.cidr.mask, k * 8 + 4);
      });
      sourceTables[i] = t;
      usesSources = true;
    }
    for (const text of rule.fqdns) {
      const { kind, base } = splitPattern(text);
      table.add(base, i, kind !== 'sub', kind !== 'exact');
      nameCount++;
    }
    if (rule.fqdnRegex.length > 0) {
      scan.push(i);
      scanRegex.push(rule.fqdnRegex.map((p) => new RegExp(`^(?:${p})$`, 'i')));
    } else if (rule.fqdns.length === 0) {
      scan.push(i);
      scanRegex.push(null);
    }
  }
  const { filter, filterShift, slots, chars, mask, lists } = table.build();
  const scanIdx = Int32Array.from(scan);

  // decisions, built once
  const decision = (action: Action, ruleId: string, reason: string, detail: string, allowPrivate: readonly string[]): Decision => {
    const deny = action === 'deny';
    if (mode === 'monitor') {
      return Object.freeze({
        verdict: 'allow',
        ruleId,
        reason,
        detail: deny ? `monitor mode: would deny (${detail})` : detail,
        wouldDeny: deny,
        wouldDenyRuleId: deny ? ruleId : '',
        allowPrivate: deny ? EMPTY : allowPrivate,
      });
    }
    return Object.freeze({ verdict: action, ruleId, reason, detail, wouldDeny: false, wouldDenyRuleId: '', allowPrivate: deny ? EMPTY : allowPrivate });
  };
  const ruleDecisions = rules.map((r) => decision(r.action, r.id, 'rule', `matched rule ${r.id}`, Object.freeze([...r.allowPrivate])));
  const defaultDecision = decision(profile.defaultAction, '', 'default', `no rule matched; default action ${profile.defaultAction}`, EMPTY);
  const echDecision = decision(profile.ech, '', 'ech', `the ClientHello carries Encrypted Client Hello; ech action ${profile.ech}`, EMPTY);
  const noNameDecisions = new Map<string, Decision>();
  const noNameDecision = (reason: string): Decision => {
    let d = noNameDecisions.get(reason);
    if (d) return d;
    d = decision(profile.noSni, '', reason, `no name learned (${reason}); noSni action ${profile.noSni}`, EMPTY);
    if (noNameDecisions.size < MAX_CACHED_REASONS) noNameDecisions.set(reason, d);
    return d;
  };
  noNameDecision('no-sni');
  const invalidDecision = (n: NameResult & { ok: false }): Decision =>
    decision(profile.noSni, '', 'invalid-name', `invalid name (${n.problem}: ${n.message}); noSni action ${profile.noSni}`, EMPTY);

  // the per-decision source address, parsed at most once and only when a candidate rule asks for it
  const source = new Int32Array(4);
  let sourceState = 0; // 0 not parsed, 1 parsed, 2 absent or invalid

  const portOk = (r: number, port: number): boolean => {
    const p = portLists[r];
    if (p instanceof Set) return p.has(port);
    if (p === undefined) return true;
    for (let k = 0; k < p.length; k++) if (p[k] === port) return true;
    return false;
  };
  const sourceOk = (r: number, sourceIp: string | undefined): boolean => {
    if (sourceState === 0) sourceState = sourceIp !== undefined && parseIp(sourceIp, source, true) ? 1 : 2;
    if (sourceState === 2) return false;
    const t = sourceTables[r] as Int32Array;
    for (let off = 0; off < t.length; off += 8) if (contains(t, off, source)) return true;
    return false;
  };
  const ruleOk = (r: number, port: number, sourceIp: string | undefined): boolean => {
    const f = flags[r] ?? 0;
    if (f === 0) return true;
    if ((f & FLAG_PORTS) !== 0 && !portOk(r, port)) return false;
    return (f & FLAG_SOURCES) === 0 || sourceOk(r, sourceIp);
  };
  /** The lowest rule index below `best` in entry `v` whose port/source limits pass. */
  const firstOk = (v: number, best: number, port: number, sourceIp: string | undefined): number => {
    if (v >= 0) return v < best && ruleOk(v, port, sourceIp) ? v : best;
    const list = lists[-v - 2] as Int32Array;
    for (let k = 0; k < list.length; k++) {
      const r = list[k] as number;
      if (r >= best) break;
      if (ruleOk(r, port, sourceIp)) return r;
    }
    return best;
  };

  /**
   * Index of the first rule matching the name, or ruleCount; UNUSUAL when `check` is set and the name is
   * not one normalizeName would hand back as it is (bar one trailing dot). With `check`, the one backward
   * pass both hashes the label suffixes and applies normalizeName's rules to a plain name (characters
   * [a-z0-9_-], labels of 1..63 characters not starting or ending with '-', at most 253 characters, a
   * last label that is not numeric nor 0x-hex), so a canonical name is read once, not twice. UNUSUAL is
   * "ask normalizeName", which decides and explains: upper case, an invalid name, anything odd.
   * A name found unusual part way has had lookups made for it; they changed nothing but `sourceState`.
   */
  const match = (raw: string, check: boolean, port: number, sourceIp: string | undefined): number => {
    let len = raw.length;
    if (check) {
      if (len > 0 && raw.charCodeAt(len - 1) === 46) len--;
      if (len === 0 || len > MAX_NAME) return UNUSUAL;
    }
    sourceState = 0;
    let best = ruleCount;
    let h = OFFSET;
    let labelEnd = len;
    // one read of each character, last to first; at each dot (and at the start) `h` is the hash of the
    // label suffix raw[from..len], which is looked up: the prefilter (filterWord and filterBits, inlined), then the table (slotOf, inlined)
    for (let i = len - 1; i >= -1; i--) {
      const c = i >= 0 ? raw.charCodeAt(i) : 46;
      if (c !== 46) {
        if (check && !((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95)) return UNUSUAL;
        h = Math.imul(h ^ c, PRIME);
        continue;
      }
      const from = i + 1;
      if (check) {
        const n = labelEnd - from;
        if (n === 0 || n > MAX_LABEL || raw.charCodeAt(from) === 45 || raw.charCodeAt(labelEnd - 1) === 45) return UNUSUAL;
        // the last label: all digits, or 0x and hex digits, makes the host an IPv4 address to URL parsers
        if (labelEnd === len && lastLabelNumeric(raw, from, len)) return UNUSUAL;
        labelEnd = i;
      }
      const g = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
      const bits = (1 << (g >>> 27)) | (1 << ((g >>> 22) & 31));
      if (((filter[Math.imul(h, 0x9e3779b1) >>> filterShift] as number) & bits) === bits) {
        let x = h ^ (h >>> 16);
        x = Math.imul(x, 0x85ebca6b);
        x ^= x >>> 13;
        x = Math.imul(x, 0xc2b2ae35);
        let slot = (x ^ (x >>> 16)) & mask;
        for (;;) {
          const at = slot * WIDTH;
          const k = slots[at + 1] as number;
          if (k === 0) break;
          if (slots[at] === h) {
            // keyEquals, inlined: the packed key (length byte, characters) against raw[from..len]
            const off = k - 1;
            const n = len - from;
            let j = 0;
            if (chars[off] === n) while (j < n && chars[off + 1 + j] === raw.charCodeAt(from + j)) j++;
            if (j === n) {
              const v = slots[at + (from === 0 ? 2 : 3)] as number;
              if (v !== NONE) best = firstOk(v, best, port, sourceIp);
              break;
            }
          }
          slot = (slot + 1) & mask;
        }
      }
      h = Math.imul(h ^ 46, PRIME);
    }
    if (scanIdx.length === 0) return best;
    const name = len === raw.length ? raw : raw.slice(0, len);
    for (let s = 0; s < scanIdx.length; s++) {
      const r = scanIdx[s] as number;
      if (r >= best) break;
      if (!ruleOk(r, port, sourceIp)) continue;
      const res = scanRegex[s];
      if (res === null || res === undefined) return r;
      for (let k = 0; k < res.length; k++) if ((res[k] as RegExp).test(name)) return r;
    }
    return best;
  };

  const decide = (input: DecisionInput): Decision => {
    if (input.ech === true && input.echGrease !== true) return echDecision;
    const raw = input.name;
    if (raw === undefined || raw === '') return noNameDecision(input.noNameReason || 'no-sni');
    const port = input.port;
    const sourceIp = input.sourceIp;
    let r = match(raw, true, port, sourceIp);
    if (r === UNUSUAL) {
      const n = normalize(raw);
      if (!n.ok) return invalidDecision(n);
      r = match(n.name, false, port, sourceIp);
    }
    return r < ruleCount ? (ruleDecisions[r] as Decision) : defaultDecision;
  };

  const explain = (input: DecisionInput): Explanation => {
    const d = decide(input);
    let normalizedName = '';
    let skipped: string | undefined;
    if (input.ech === true && input.echGrease !== true) skipped = 'not evaluated: the ech action decides';
    else if (input.name === undefined || input.name === '') skipped = 'not evaluated: no name, the noSni action decides';
    else {
      const n = normalizeName(input.name);
      if (n.ok) normalizedName = n.name;
      else skipped = 'not evaluated: invalid name, the noSni action decides';
    }
    const addr = new Int32Array(4);
    const addrOk = input.sourceIp !== undefined && parseIpInto(input.sourceIp, addr, true);
    const traces: RuleTrace[] = rules.map((rule, index) => {
      const trace = (matched: boolean, detail: string): RuleTrace => ({ ruleId: rule.id, index, matched, action: rule.action, detail });
      if (skipped !== undefined) return trace(false, skipped);
      const parts: string[] = [];
      let ok = true;
      if (rule.fqdns.length > 0 || rule.fqdnRegex.length > 0) {
        const hit =
          rule.fqdns.find((t) => {
            const { kind, base } = splitPattern(t);
            return patternMatches(kind, base, normalizedName);
          }) ?? rule.fqdnRegex.find((p) => new RegExp(`^(?:${p})$`, 'i').test(normalizedName));
        if (hit !== undefined) parts.push(`name matches ${hit}`);
        else {
          ok = false;
          const all = [...rule.fqdns, ...rule.fqdnRegex];
          parts.push(all.length <= 5 ? `name matches none of ${all.join(', ')}` : `name matches none of ${all.length} patterns`);
        }
      } else parts.push('rule has no names (matches any name)');
      if (rule.ports.length > 0) {
        const inPorts = rule.ports.includes(input.port);
        ok &&= inPorts;
        parts.push(`port ${input.port} ${inPorts ? 'in' : 'not in'} [${rule.ports.join(', ')}]`);
      }
      if (rule.sources.length > 0) {
        if (!addrOk) {
          ok = false;
          parts.push(input.sourceIp === undefined ? 'no source address given' : `source "${input.sourceIp}" is not an address`);
        } else {
          const hitCidr = rule.sources.find((s) => {
            const c = parseCidr(s);
            if (!c.ok) return false;
            const t = new Int32Array(8);
            t.set(c.cidr.net, 0);
            t.set(c.cidr.mask, 4);
            return cidrTableContains(t, 0, addr);
          });
          ok &&= hitCidr !== undefined;
          parts.push(hitCidr !== undefined ? `source ${formatIp(addr)} in ${hitCidr}` : `source ${formatIp(addr)} not in [${rule.sources.join(', ')}]`);
        }
      }
      return trace(ok, parts.join('; '));
    });
    return { normalizedName, decision: d, rules: traces };
  };

  return { profile, nameCount, usesSources, usesPorts, decide, explain };
}
