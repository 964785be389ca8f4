// Validates a parsed profile: every problem is collected (none stops the walk), each with its path
// and, where there is one, the fix. The result is a normalised, frozen Profile.
import { parseCidr } from './cidr';
import { parseNamePattern, wildcardsPublicSuffix, type NamePattern } from './name-pattern';
import { checkRegexSafety, escapeBareDots } from './regex-safety';
import type { Action, Mode, ParseResult, Profile, Rule, ValidationProblem } from './types';

const TOP_KEYS = ['apiVersion', 'kind', 'name', 'mode', 'defaultAction', 'noSni', 'ech', 'rules'];
const RULE_KEYS = ['id', 'action', 'fqdns', 'fqdnRegex', 'ports', 'sources', 'allowPrivate', 'allowPublicSuffixWildcard'];
const ACTIONS: readonly Action[] = ['allow', 'deny'];
const MODES: readonly Mode[] = ['enforce', 'monitor'];
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Profiles produced here; compileProfile trusts these and re-validates anything else. */
const validated = new WeakSet<Profile>();

export function isValidatedProfile(p: Profile): boolean {
  return validated.has(p);
}

class Collector {
  readonly problems: ValidationProblem[] = [];
  readonly warnings: ValidationProblem[] = [];
  problem(path: string, message: string, fix?: string): void {
    this.problems.push(fix === undefined ? { path, message } : { path, message, fix });
  }
  warn(path: string, message: string, fix?: string): void {
    this.warnings.push(fix === undefined ? { path, message } : { path, message, fix });
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'empty (null)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the text ${JSON.stringify(v)}`;
  return `${typeof v === 'number' ? 'the number' : typeof v === 'boolean' ? 'the boolean' : typeof v} ${String(v)}`;
}

/** Optimal-string-alignment distance: edits, counting a swap of neighbours ("fqnds") as one. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const get = (i: number, j: number): number => d[i]?.[j] ?? 0;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(get(i - 1, j) + 1, get(i, j - 1) + 1, get(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, get(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = v;
    }
  }
  return get(a.length, b.length);
}

/** The known word a mistyped one most likely meant. */
function suggest(word: string, known: readonly string[]): string | undefined {
  const squash = (s: string): string => s.toLowerCase().replace(/[-_\s]/g, '');
  const w = squash(word);
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const q = squash(k);
    // same word in another case or spelling style, or one a prefix of the other ("enforcing")
    const d = q === w ? 0 : Math.min(q.length, w.length) >= 5 && (q.startsWith(w.slice(0, 6)) || w.startsWith(q)) ? 1 : editDistance(w, q);
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return bestD <= Math.max(1, Math.min(2, Math.floor(word.length / 3))) ? best : undefined;
}

function at(path: string, key: string | number): string {
  return typeof key === 'number' ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;
}

function unknownKeys(obj: Record<string, unknown>, known: readonly string[], path: string, c: Collector): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    const s = suggest(key, known);
    c.problem(at(path, key), `unknown key "${key}"`, s === undefined ? `remove it; known keys: ${known.join(', ')}` : `did you mean ${s}?`);
  }
}

function enumField<T extends string>(obj: Record<string, unknown>, key: string, values: readonly T[], path: string, c: Collector, dflt: T | undefined): T | undefined {
  const p = at(path, key);
  if (!(key in obj)) {
    if (dflt === undefined) c.problem(p, `${key} is required`, `add ${key}: ${values.join(' | ')}`);
    return dflt;
  }
  const v = obj[key];
  if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
  const s = typeof v === 'string' ? suggest(v, values) : undefined;
  c.problem(p, `${key} is ${describe(v)}; it must be one of ${values.join(', ')}`, s === undefined ? undefined : `write ${key}: ${s}`);
  return undefined;
}

function constField(obj: Record<string, unknown>, key: string, value: string, c: Collector): void {
  const v = obj[key];
  if (v === value) return;
  c.problem(key, key in obj ? `${key} is ${describe(v)}; it must be ${value}` : `${key} is required`, `write ${key}: ${value}`);
}

/** A list field: undefined when absent, null when unusable (problem recorded). */
function listField(obj: Record<string, unknown>, key: string, path: string, c: Collector, example: string): unknown[] | undefined | null {
  if (!(key in obj)) return undefined;
  const v = obj[key];
  const p = at(path, key);
  if (Array.isArray(v)) return v;
  if (typeof v === 'string' || typeof v === 'number') {
    c.problem(p, `${key} is ${describe(v)}; it must be a list`, `write ${key}: [${JSON.stringify(v)}]`);
  } else {
    c.problem(p, `${key} is ${describe(v)}; it must be a list`, `write ${key}: [${example}], or remove the key`);
  }
  return null;
}

interface RuleBuild {
  rule: Rule;
  patterns: NamePattern[];
  unconstrained: boolean;
}

function validateRule(raw: unknown, i: number, c: Collector): RuleBuild | undefined {
  const path = `rules[${i}]`;
  if (!isRecord(raw)) {
    c.problem(path, `a rule must be a mapping (id, action, fqdns...), not ${describe(raw)}`);
    return undefined;
  }
  const before = c.problems.length;
  unknownKeys(raw, RULE_KEYS, path, c);

  let id = '';
  if (!('id' in raw)) c.problem(at(path, 'id'), 'id is required', `add id: rule-${i}`);
  else if (typeof raw.id === 'number') c.problem(at(path, 'id'), `id is ${describe(raw.id)}; it must be text`, `write id: "${raw.id}"`);
  else if (typeof raw.id !== 'string' || !ID_RE.test(raw.id)) {
    c.problem(at(path, 'id'), `id is ${describe(raw.id)}; it must be 1..128 of letters, digits, ".", "_", ":" or "-", starting with a letter or digit`);
  } else id = raw.id;

  const action = enumField(raw, 'action', ACTIONS, path, c, undefined);

  // fqdns
  const patterns: NamePattern[] = [];
  const fqdns: string[] = [];
  const rawFqdns = listField(raw, 'fqdns', path, c, '"example.com", "*.example.com"');
  const allowPsw = raw.allowPublicSuffixWildcard;
  if (allowPsw !== undefined && typeof allowPsw !== 'boolean') {
    c.problem(at(path, 'allowPublicSuffixWildcard'), `allowPublicSuffixWildcard is ${describe(allowPsw)}; it must be true or false`, allowPsw === 'true' || allowPsw === 'false' ? `write allowPublicSuffixWildcard: ${allowPsw}` : undefined);
  }
  let usedPsw = false;
  if (rawFqdns) {
    const seen = new Set<string>();
    for (let j = 0; j < rawFqdns.length; j++) {
      const v = rawFqdns[j];
      const p = `${path}.fqdns[${j}]`;
      if (typeof v !== 'string') {
        c.problem(p, `a name must be text, not ${describe(v)}`, typeof v === 'number' ? `write "${v}"` : undefined);
        continue;
      }
      const r = parseNamePattern(v);
      if (!r.ok) {
        c.problem(p, r.message, r.fix);
        continue;
      }
      const pat = r.pattern;
      if (pat.converted) c.warn(p, `"${v}" is Unicode; it is matched as its A-label form ${pat.text}`, `write ${pat.text}`);
      if (wildcardsPublicSuffix(pat)) {
        if (allowPsw === true) usedPsw = true;
        else {
          c.problem(p, `"${v}" is a wildcard over the public suffix "${pat.base}": it matches names of unrelated owners`, `name the domains under ${pat.base} you mean, or set allowPublicSuffixWildcard: true on this rule`);
          continue;
        }
      }
      if (seen.has(pat.text)) {
        c.warn(p, `"${v}" is listed twice in this rule`, 'remove the duplicate');
        continue;
      }
      seen.add(pat.text);
      patterns.push(pat);
      fqdns.push(pat.text);
    }
  }
  if (allowPsw === true && !usedPsw) c.warn(at(path, 'allowPublicSuffixWildcard'), 'allowPublicSuffixWildcard is set but no fqdns entry is a wildcard over a public suffix', 'remove it');

  // fqdnRegex
  const fqdnRegex: string[] = [];
  const rawRegex = listField(raw, 'fqdnRegex', path, c, '"^api[0-9]*\\\\.example\\\\.com$"');
  if (rawRegex) {
    for (let j = 0; j < rawRegex.length; j++) {
      const v = rawRegex[j];
      const p = `${path}.fqdnRegex[${j}]`;
      if (typeof v !== 'string' || v === '') {
        c.problem(p, `a pattern must be non-empty text, not ${describe(v)}`);
        continue;
      }
      const problem = regexProblem(v);
      if (problem) {
        c.problem(p, problem.message, problem.fix);
        continue;
      }
      const escaped = escapeBareDots(v);
      if (escaped !== undefined) c.warn(p, `"${v}" has an unescaped "." that matches any character, not just a dot`, `write ${escaped}`);
      if (!fqdnRegex.includes(v)) fqdnRegex.push(v);
    }
  }

  // ports
  const ports: number[] = [];
  const rawPorts = listField(raw, 'ports', path, c, '443');
  if (rawPorts) {
    for (let j = 0; j < rawPorts.length; j++) {
      const v = rawPorts[j];
      const p = `${path}.ports[${j}]`;
      if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535) {
        if (!ports.includes(v)) ports.push(v);
      } else if (typeof v === 'string' && /^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 65535) {
        c.problem(p, `port is ${describe(v)}; it must be a number`, `write ${Number(v)} without quotes`);
      } else if (typeof v === 'string' && /^\d+-\d+$/.test(v)) {
        c.problem(p, `port ranges ("${v}") are not supported`, 'list the ports one by one');
      } else {
        c.problem(p, `port is ${describe(v)}; it must be a whole number 1..65535`);
      }
    }
  }

  let cidrSources: unknown[] | undefined | null;
  const cidrList = (key: 'sources' | 'allowPrivate'): string[] => {
    const out: string[] = [];
    const list = listField(raw, key, path, c, '"10.0.0.0/8"');
    if (key === 'sources') cidrSources = list;
    if (!list) return out;
    for (let j = 0; j < list.length; j++) {
      const v = list[j];
      const p = `${path}.${key}[${j}]`;
      if (typeof v !== 'string') {
        c.problem(p, `a CIDR must be text, not ${describe(v)}`);
        continue;
      }
      const r = parseCidr(v);
      if (!r.ok) c.problem(p, r.message, r.fix);
      else if (!out.includes(r.cidr.text)) out.push(r.cidr.text);
    }
    return out;
  };
  const sources = cidrList('sources');
  const allowPrivate = cidrList('allowPrivate');
  if (action === 'deny' && allowPrivate.length > 0) c.warn(at(path, 'allowPrivate'), 'allowPrivate has no effect on a deny rule', 'remove it');

  // An empty list is the same as an absent key (a normalised profile always has every list), so a
  // rule with no names matches every name; with no ports and no sources either it would match every
  // connection and hide every later rule: that is what defaultAction is for.
  const empty = (l: unknown[] | undefined | null): boolean => l === undefined || (l !== null && l.length === 0);
  if (empty(rawFqdns) && empty(rawRegex) && empty(rawPorts) && empty(cidrSources)) {
    c.problem(path, 'the rule has no fqdns, fqdnRegex, ports or sources: it matches every connection and hides every later rule', `remove it and set defaultAction: ${action ?? 'allow'}`);
  }

  if (c.problems.length > before || action === undefined) return undefined;
  const rule: Rule = Object.freeze({
    id,
    action,
    fqdns: Object.freeze(fqdns) as string[],
    fqdnRegex: Object.freeze(fqdnRegex) as string[],
    ports: Object.freeze(ports) as number[],
    sources: Object.freeze(sources) as string[],
    allowPrivate: Object.freeze(allowPrivate) as string[],
    allowPublicSuffixWildcard: allowPsw === true,
  });
  return { rule, patterns, unconstrained: ports.length === 0 && sources.length === 0 };
}

function regexProblem(v: string): { message: string; fix?: string } | undefined {
  if (/[^\x00-\x7f]/.test(v)) return { message: `"${v}" has non-ASCII characters; names are matched in A-label (xn--) form, so it can never match`, fix: 'write the A-label form, or use fqdns (Unicode there is converted)' };
  if (v.length > 2 && v.startsWith('/') && /\/[a-z]*$/.test(v)) {
    return { message: `"${v}" is written with /slashes/; they would be matched literally`, fix: `write ${v.slice(1, v.lastIndexOf('/'))} (patterns are always case-insensitive and anchored)` };
  }
  try {
    new RegExp(v, 'i');
  } catch (e) {
    return { message: `"${v}" is not a valid regular expression: ${(e as Error).message}` };
  }
  const safety = checkRegexSafety(v);
  if (!safety.ok) return { message: `"${v}": ${safety.message ?? 'unsafe pattern'}`, ...(safety.fix === undefined ? {} : { fix: safety.fix }) };
  return undefined;
}

/**
 * Warns about fqdns entries that can never decide because an earlier rule with no port or source
 * limits already matches every name they match (same pattern, or a covering `*.x` / `.x`).
 */
class ShadowCheck {
  private readonly apex = new Map<string, number>(); // name -> earliest unconstrained rule matching it exactly (x or .x)
  private readonly below = new Map<string, number>(); // name -> earliest unconstrained rule matching all its subdomains (*.x or .x)

  check(p: NamePattern): number | undefined {
    const b = p.base;
    for (let dot = b.indexOf('.'); dot >= 0; dot = b.indexOf('.', dot + 1)) {
      const r = this.below.get(b.slice(dot + 1));
      if (r !== undefined) return r;
    }
    const apex = this.apex.get(b);
    const below = this.below.get(b);
    if (p.kind === 'exact') return apex;
    if (p.kind === 'sub') return below;
    return apex !== undefined && below !== undefined ? Math.max(apex, below) : undefined;
  }

  add(p: NamePattern, rule: number): void {
    if (p.kind !== 'sub' && !this.apex.has(p.base)) this.apex.set(p.base, rule);
    if (p.kind !== 'exact' && !this.below.has(p.base)) this.below.set(p.base, rule);
  }
}

/** Validates an already-parsed profile (from YAML, JSON, or a stored copy). */
export function validateProfile(raw: unknown): ParseResult {
  const c = new Collector();
  if (!isRecord(raw)) {
    c.problem('', `a profile must be a mapping with apiVersion, kind, name and rules, not ${describe(raw)}`);
    return { ok: false, problems: c.problems, warnings: c.warnings };
  }
  unknownKeys(raw, TOP_KEYS, '', c);
  constField(raw, 'apiVersion', 'portcullis/v1', c);
  constField(raw, 'kind', 'FqdnFilterProfile', c);
  let name = '';
  if (typeof raw.name === 'string' && raw.name.length > 0 && raw.name.length <= 253 && !/[\x00-\x1f\x7f]/.test(raw.name)) name = raw.name;
  else c.problem('name', 'name' in raw ? `name is ${describe(raw.name)}; it must be 1..253 printable characters` : 'name is required', 'name' in raw ? undefined : 'add name: default');
  const mode = enumField(raw, 'mode', MODES, '', c, 'enforce');
  const defaultAction = enumField(raw, 'defaultAction', ACTIONS, '', c, 'deny');
  const noSni = enumField(raw, 'noSni', ACTIONS, '', c, 'deny');
  const ech = enumField(raw, 'ech', ACTIONS, '', c, 'deny');

  const rules: Rule[] = [];
  const rawRules = listField(raw, 'rules', '', c, '{ id: github, action: allow, fqdns: [github.com] }');
  if (rawRules) {
    const ids = new Map<string, number>();
    const shadow = new ShadowCheck();
    const idAt: string[] = [];
    for (let i = 0; i < rawRules.length; i++) {
      const built = validateRule(rawRules[i], i, c);
      const rawId = isRecord(rawRules[i]) ? (rawRules[i] as Record<string, unknown>).id : undefined;
      if (typeof rawId === 'string') {
        const first = ids.get(rawId);
        if (first === undefined) ids.set(rawId, i);
        else c.problem(`rules[${i}].id`, `duplicate id "${rawId}"; first used by rules[${first}]`, `give each rule its own id, e.g. ${rawId}-${i}`);
      }
      if (!built) continue;
      for (let j = 0; j < built.patterns.length; j++) {
        const pat = built.patterns[j] as NamePattern;
        const by = shadow.check(pat);
        if (by !== undefined && by !== i) {
          c.warn(`rules[${i}].fqdns[${j}]`, `"${pat.text}" never decides: rules[${by}] (${idAt[by] ?? '?'}) already matches it for every port and client`, 'remove it, or move this rule above that one');
        }
      }
      if (built.unconstrained) for (const pat of built.patterns) shadow.add(pat, i);
      idAt[i] = built.rule.id;
      rules.push(built.rule);
    }
  }

  if (c.problems.length > 0 || mode === undefined || defaultAction === undefined || noSni === undefined || ech === undefined) {
    return { ok: false, problems: c.problems, warnings: c.warnings };
  }
  const profile: Profile = Object.freeze({
    apiVersion: 'portcullis/v1',
    kind: 'FqdnFilterProfile',
    name,
    mode,
    defaultAction,
    noSni,
    ech,
    rules: Object.freeze(rules) as Rule[],
  });
  validated.add(profile);
  return { ok: true, profile, warnings: c.warnings };
}
