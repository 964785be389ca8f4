// Name normalisation shared by the edge (names from the wire) and the policy engine (names in rules).
import { domainToASCII } from 'node:url';

export type NameProblem = 'empty' | 'too-long' | 'empty-label' | 'label-too-long' | 'bad-char' | 'ip-literal' | 'unicode' | 'hyphen';

export type NameResult = { ok: true; name: string } | { ok: false; problem: NameProblem; message: string };

const MAX_NAME = 253;
const MAX_LABEL = 63;
const LABEL = /^[a-z0-9_-]+$/;
/** An IPv6 literal, bracketed or not, with an optional zone: hex digits, colons, dots (embedded IPv4). */
const IPV6 = /^\[?[0-9a-f:.]*:[0-9a-f:.]*(%[^\]]*)?\]?$/i;

function fail(problem: NameProblem, message: string): NameResult {
  return { ok: false, problem, message };
}

/**
 * Would a WHATWG URL parser (browsers, curl, Node's URL) read this host as an IPv4 address? That covers the
 * dotted quad and also "127.1", "0x7f.0.0.1", "0177.0.0.1" and "2130706433": every one reaches 127.0.0.1.
 * `name` has no trailing dot and is ASCII.
 */
function isIpv4Host(name: string): boolean {
  const parts = name.split('.');
  if (parts.length > 4) return false;
  const values: number[] = [];
  for (const p of parts) {
    let v: number;
    if (/^0[xX][0-9a-fA-F]*$/.test(p)) v = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]+$/.test(p)) v = parseInt(p.slice(1), 8);
    else if (/^(0|[1-9][0-9]*)$/.test(p)) v = Number(p);
    else return false;
    values.push(v);
  }
  const last = values[values.length - 1] ?? 0;
  if (values.slice(0, -1).some((v) => v > 255)) return false;
  return last < 256 ** (5 - values.length);
}

/** WHATWG's "ends in a number": such a host is parsed as IPv4 and is never a domain name. */
function endsInNumber(name: string): boolean {
  const last = name.slice(name.lastIndexOf('.') + 1);
  return /^[0-9]+$/.test(last) || /^0[xX][0-9a-fA-F]*$/.test(last);
}

/**
 * Canonical form of a DNS name as it arrives from the network (SNI, CONNECT, SOCKS):
 * ASCII only (a Unicode SNI is invalid per RFC 6066), lowercased, one trailing dot removed,
 * labels of 1..63 characters from [a-z0-9-_] not starting or ending with '-', at most 253 characters,
 * and never an IP literal (nor anything a URL parser would read as one, such as "127.1").
 * The policy engine's match (fqdn-policy compile.ts) applies these rules itself to a name it looks up, in
 * the same backward pass, and asks here only about names that pass does not accept: a change to them
 * belongs there too (its decide-names property test fails until it is made).
 */
export function normalizeName(raw: string): NameResult {
  const name = plainName(raw);
  return name === undefined ? checkName(raw) : { ok: true, name };
}

/**
 * The hot path (every decision normalises a name): one pass over the characters that accepts
 * the common case, an ordinary valid name, without allocating more than the lowercased result.
 * Anything unusual (a numeric or hex last label, odd characters, bad label lengths) returns
 * undefined and gets the full check, which decides and explains.
 */
function plainName(raw: string): string | undefined {
  let end = raw.length;
  if (end > 0 && raw.charCodeAt(end - 1) === 0x2e) end--;
  if (end === 0 || end > MAX_NAME) return undefined;
  let upper = false;
  let start = 0;
  let prev = 0x2e;
  for (let i = 0; i < end; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x2e) {
      const n = i - start;
      if (n === 0 || n > MAX_LABEL || prev === 0x2d) return undefined;
      start = i + 1;
    } else if (c >= 0x41 && c <= 0x5a) upper = true;
    else if (c === 0x2d) {
      if (prev === 0x2e) return undefined;
    } else if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x5f)) return undefined;
    prev = c;
  }
  const n = end - start;
  if (n === 0 || n > MAX_LABEL || prev === 0x2d) return undefined;
  // a last label that is all digits, or 0x…, makes the host an IPv4 address to URL parsers
  let digits = true;
  for (let i = start; i < end && digits; i++) {
    const c = raw.charCodeAt(i);
    digits = c >= 0x30 && c <= 0x39;
  }
  if (digits || (raw.charCodeAt(start) === 0x30 && (raw.charCodeAt(start + 1) | 0x20) === 0x78)) return undefined;
  const name = end === raw.length ? raw : raw.slice(0, end);
  return upper ? name.toLowerCase() : name;
}

function checkName(raw: string): NameResult {
  let name = raw;
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0) return fail('empty', 'name is empty');
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return fail('bad-char', `control character 0x${c.toString(16).padStart(2, '0')} at ${i}`);
    if (c > 0x7f) return fail('unicode', 'non-ASCII character; names must be in A-label (punycode) form');
  }
  // An address is an address whatever its length: classify it before the length rules.
  if (name.includes(':')) {
    if (IPV6.test(name)) return fail('ip-literal', 'an IPv6 address is not a name');
    return fail('bad-char', 'a name has no ":" (a port belongs elsewhere)');
  }
  if (isIpv4Host(name)) return fail('ip-literal', 'an IPv4 address is not a name');
  if (name.length > MAX_NAME) return fail('too-long', `name is ${name.length} characters; at most ${MAX_NAME}`);
  name = name.toLowerCase();
  const labels = name.split('.');
  for (const label of labels) {
    if (label.length === 0) return fail('empty-label', 'empty label (two dots in a row, or a leading dot)');
    if (label.length > MAX_LABEL) return fail('label-too-long', `label of ${label.length} characters; at most ${MAX_LABEL}`);
    if (label.startsWith('-') || label.endsWith('-')) return fail('hyphen', `label "${label}" starts or ends with a hyphen`);
    if (!LABEL.test(label)) return fail('bad-char', `label "${label}" has a character outside [a-z0-9-_]`);
  }
  if (endsInNumber(name)) return fail('bad-char', 'the last label is numeric; URL parsers read such a host as an IPv4 address');
  return { ok: true, name };
}

/**
 * Canonical form of a name written by a person (a policy rule): Unicode is converted to
 * A-labels with UTS #46 processing (NFC first, so composed and decomposed forms agree), then checked
 * like a name from the wire. A-labels written directly ("xn--...") must be valid punycode.
 */
export function normalizeRuleName(raw: string): NameResult & { converted?: boolean } {
  if (/[^\x00-\x7f]/.test(raw)) {
    // Control characters and spaces make UTS #46 fail outright; report them as what they are.
    const ctl = /[\x00-\x20\x7f]/.exec(raw);
    if (ctl) return fail('bad-char', `control character or space 0x${ctl[0].charCodeAt(0).toString(16).padStart(2, '0')} at ${ctl.index}`);
    const ascii = domainToASCII(raw.normalize('NFC'));
    if (ascii === '') return fail('unicode', `"${raw}" is not a valid internationalised name`);
    const r = normalizeName(ascii);
    return r.ok ? { ...r, converted: true } : r;
  }
  const r = normalizeName(raw);
  if (r.ok && /(^|\.)xn--/.test(r.name) && domainToASCII(r.name) !== r.name) {
    return fail('unicode', `"${raw}" has an A-label ("xn--...") that is not valid punycode`);
  }
  return r;
}

/** The full check alone, for the property test that the fast path agrees with it. */
export const checkNameForTest = checkName;
