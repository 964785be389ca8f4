// Name normalisation shared by the edge (names from the wire) and the policy engine (names in rules).
import { domainToASCII } from 'node:url';

export type NameProblem = 'empty' | 'too-long' | 'empty-label' | 'label-too-long' | 'bad-char' | 'ip-literal' | 'unicode' | 'hyphen';

export type NameResult = { ok: true; name: string } | { ok: false; problem: NameProblem; message: string };

const MAX_NAME = 253;
const MAX_LABEL = 63;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

function fail(problem: NameProblem, message: string): NameResult {
  return { ok: false, problem, message };
}

/**
 * Canonical form of a DNS name as it arrives from the network (SNI, CONNECT, SOCKS):
 * ASCII only (a Unicode SNI is invalid per RFC 6066), lowercased, one trailing dot removed,
 * labels of 1..63 characters from [a-z0-9-_], at most 253 characters, and never an IP literal.
 */
export function normalizeName(raw: string): NameResult {
  let name = raw;
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0) return fail('empty', 'name is empty');
  if (name.length > MAX_NAME) return fail('too-long', `name is ${name.length} characters; at most ${MAX_NAME}`);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return fail('bad-char', `control character 0x${c.toString(16).padStart(2, '0')} at ${i}`);
    if (c > 0x7f) return fail('unicode', 'non-ASCII character; names must be in A-label (punycode) form');
  }
  if (name.includes(':') || IPV4.test(name)) return fail('ip-literal', 'an IP address is not a name');
  name = name.toLowerCase();
  const labels = name.split('.');
  for (const label of labels) {
    if (label.length === 0) return fail('empty-label', 'empty label (two dots in a row)');
    if (label.length > MAX_LABEL) return fail('label-too-long', `label of ${label.length} characters; at most ${MAX_LABEL}`);
    if (label.startsWith('-') || label.endsWith('-')) return fail('hyphen', `label "${label}" starts or ends with a hyphen`);
    if (!/^[a-z0-9_-]+$/.test(label)) return fail('bad-char', `label "${label}" has a character outside [a-z0-9-_]`);
  }
  return { ok: true, name };
}

/**
 * Canonical form of a name written by a person (a policy rule): Unicode is converted to
 * A-labels with UTS #46 processing, then checked like a name from the wire.
 */
export function normalizeRuleName(raw: string): NameResult & { converted?: boolean } {
  let ascii = raw;
  if (/[^\x00-\x7f]/.test(raw)) {
    ascii = domainToASCII(raw.normalize('NFC'));
    if (ascii === '') return fail('unicode', `"${raw}" is not a valid internationalised name`);
    const r = normalizeName(ascii);
    return r.ok ? { ...r, converted: true } : r;
  }
  return normalizeName(ascii);
}
