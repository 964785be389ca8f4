// One `fqdns` entry of a rule: `a.b.c` (exact), `*.b.c` (strict subdomains at any depth) or
// `.b.c` (b.c and its subdomains), normalised through the edge's own normalizeRuleName.
import { normalizeRuleName } from '@portcullis/sniff';
import { isPublicSuffix } from './public-suffix';

export type PatternKind = 'exact' | 'sub' | 'dot';

export interface NamePattern {
  kind: PatternKind;
  /** The normalised name without its `*.` or `.` prefix. */
  base: string;
  /** The normalised pattern as it is stored in the profile. */
  text: string;
  /** The entry was Unicode and was converted to A-labels. */
  converted: boolean;
}

export type PatternResult = { ok: true; pattern: NamePattern } | { ok: false; message: string; fix?: string };

const PREFIX: Record<PatternKind, string> = { exact: '', sub: '*.', dot: '.' };

export function patternText(kind: PatternKind, base: string): string {
  return PREFIX[kind] + base;
}

/** Does the pattern match the (normalised) name? The plain, obviously-correct definition. */
export function patternMatches(kind: PatternKind, base: string, name: string): boolean {
  if (name === base) return kind !== 'sub';
  return kind !== 'exact' && name.length > base.length + 1 && name.endsWith(base) && name.charCodeAt(name.length - base.length - 1) === 46;
}

export function parseNamePattern(raw: string): PatternResult {
  const trimmed = raw.trim();
  if (trimmed !== raw) return { ok: false, message: `"${raw}" has surrounding spaces`, fix: `write ${trimmed}` };
  if (raw === '') return { ok: false, message: 'empty name' };
  if (raw.includes(':')) {
    const url = /^[a-z][a-z0-9+.-]*:\/\/([^/:?#]*)/i.exec(raw);
    if (url) return { ok: false, message: `"${raw}" is a URL; a rule names a host`, fix: `write ${url[1] ?? ''}` };
    const hostPort = /^([^:/]+):(\d+)$/.exec(raw);
    if (hostPort) {
      return { ok: false, message: `"${raw}" carries a port; names and ports are separate fields`, fix: `write ${hostPort[1] ?? ''} and add ports: [${hostPort[2] ?? ''}]` };
    }
  }
  if (raw.includes('/')) return { ok: false, message: `"${raw}" contains "/"; a rule names a host, not a path` };

  let kind: PatternKind = 'exact';
  let rest = raw;
  if (raw.startsWith('*.')) {
    kind = 'sub';
    rest = raw.slice(2);
  } else if (raw.startsWith('.')) {
    kind = 'dot';
    rest = raw.slice(1);
  }
  if (rest === '' || rest === '.') return { ok: false, message: `"${raw}" matches every name`, fix: 'remove it and use defaultAction, or a rule with only ports/sources' };
  if (rest.includes('*')) {
    if (raw === '*') return { ok: false, message: '"*" matches every name', fix: 'remove it and use defaultAction, or a rule with only ports/sources' };
    return {
      ok: false,
      message: `"${raw}": "*" is allowed only as a whole leftmost label ("*.example.com")`,
      fix: 'write *.<name> for every subdomain, or use fqdnRegex for partial labels',
    };
  }
  if (kind !== 'exact' && rest.startsWith('.')) return { ok: false, message: `"${raw}" has an empty label after its prefix`, fix: `write ${PREFIX[kind]}${rest.replace(/^\.+/, '')}` };
  const n = normalizeRuleName(rest);
  if (!n.ok) {
    if (n.problem === 'ip-literal') return { ok: false, message: `"${raw}" is an IP address; rules match names (clients are matched with sources)` };
    return { ok: false, message: `"${raw}": ${n.message}` };
  }
  const base = n.name;
  return { ok: true, pattern: { kind, base, text: PREFIX[kind] + base, converted: n.converted === true } };
}

/** Whether the pattern is a wildcard (`*.x` or `.x`) over a public suffix. */
export function wildcardsPublicSuffix(p: NamePattern): boolean {
  return p.kind !== 'exact' && isPublicSuffix(p.base);
}
