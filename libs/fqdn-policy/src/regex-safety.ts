// Refuses fqdnRegex patterns whose shape can make a backtracking engine take exponential or
// high-polynomial time on a hostile name. The check is structural and conservative (docs/policy.md):
//   1. no back-references (\1, \k<n>) and no lookarounds ((?=, (?!, (?<=, (?<!);
//   2. a repeated group ((...)*, +, {n,}, {n,m} with m >= 2) may contain neither alternation nor a
//      quantified group; a quantifier inside it must be on one character or class and be followed by
//      a literal character that it cannot match (the "delimited" form, e.g. ([a-z0-9-]+\.)* );
//   3. at most one "free" repetition per pattern (a repetition not followed by a literal it cannot
//      match, like the .* in ^.*\.example\.com$) and at most 8 free optional groups.
// Names are at most 253 characters, so what this admits stays near-linear per decision.

export interface RegexCheck {
  ok: boolean;
  message?: string;
  fix?: string;
}

type Atom =
  | { t: 'char'; src: string }
  | { t: 'class'; src: string }
  | { t: 'anchor'; src: string }
  | { t: 'group'; alts: Item[][] };

interface Quant {
  min: number;
  max: number; // Infinity when unbounded
}

interface Item {
  atom: Atom;
  q: Quant | undefined;
}

class Refusal {
  constructor(
    readonly message: string,
    readonly fix?: string,
  ) {}
}

const CLASS_ESCAPES = 'dDwWsS';

class Parser {
  i = 0;
  constructor(readonly p: string) {}

  alts(): Item[][] {
    const out: Item[][] = [this.seq()];
    while (this.p[this.i] === '|') {
      this.i++;
      out.push(this.seq());
    }
    return out;
  }

  seq(): Item[] {
    const items: Item[] = [];
    while (this.i < this.p.length) {
      const c = this.p[this.i];
      if (c === '|' || c === ')') break;
      const atom = this.atom();
      const q = this.quant();
      items.push({ atom, q });
    }
    return items;
  }

  atom(): Atom {
    const p = this.p;
    const c = p[this.i] as string;
    if (c === '(') {
      if (p.startsWith('(?=', this.i) || p.startsWith('(?!', this.i) || p.startsWith('(?<=', this.i) || p.startsWith('(?<!', this.i)) {
        throw new Refusal('lookarounds ((?=, (?!, (?<=, (?<!) are not allowed in fqdnRegex', 'match the name directly, or split it into several rules');
      }
      if (p.startsWith('(?:', this.i)) this.i += 3;
      else if (p.startsWith('(?<', this.i)) this.i = p.indexOf('>', this.i) + 1;
      else this.i++;
      const alts = this.alts();
      this.i++; // ')' (the pattern already compiled, so it is there)
      return { t: 'group', alts };
    }
    if (c === '[') {
      const start = this.i;
      this.i++;
      if (p[this.i] === '^') this.i++;
      while (this.i < p.length && p[this.i] !== ']') this.i += p[this.i] === '\\' ? 2 : 1;
      this.i++;
      return { t: 'class', src: p.slice(start, this.i) };
    }
    if (c === '\\') {
      const e = p[this.i + 1] ?? '';
      if (/[1-9]/.test(e) || (e === 'k' && p[this.i + 2] === '<')) {
        throw new Refusal('back-references (\\1, \\k<name>) are not allowed in fqdnRegex', 'remove the back-reference; repeat the text or list the names in fqdns');
      }
      const start = this.i;
      if (e === 'b' || e === 'B') {
        this.i += 2;
        return { t: 'anchor', src: p.slice(start, this.i) };
      }
      if (e === 'x') this.i += 4;
      else if (e === 'u') this.i += 6;
      else if (e === 'c') this.i += 3;
      else this.i += 2;
      return CLASS_ESCAPES.includes(e) ? { t: 'class', src: p.slice(start, this.i) } : { t: 'char', src: p.slice(start, this.i) };
    }
    this.i++;
    if (c === '^' || c === '$') return { t: 'anchor', src: c };
    if (c === '.') return { t: 'class', src: '.' };
    return { t: 'char', src: c };
  }

  quant(): Quant | undefined {
    const p = this.p;
    const c = p[this.i];
    let q: Quant | undefined;
    if (c === '*') q = { min: 0, max: Infinity };
    else if (c === '+') q = { min: 1, max: Infinity };
    else if (c === '?') q = { min: 0, max: 1 };
    if (q) this.i++;
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(this.i));
      if (!m) return undefined;
      const min = Number(m[1]);
      const max = m[2] === undefined ? min : m[3] === '' || m[3] === undefined ? Infinity : Number(m[3]);
      q = { min, max };
      this.i += m[0].length;
    }
    if (q && p[this.i] === '?') this.i++; // lazy: same shape
    return q;
  }
}

const repeats = (q: Quant | undefined): boolean => q !== undefined && q.max > 1;
const isSingle = (a: Atom): a is { t: 'char' | 'class'; src: string } => a.t === 'char' || a.t === 'class';

/** Can the one-character atom match the literal character `lit`? Asked of the regex engine itself. */
function atomMatches(atomSrc: string, litSrc: string): boolean {
  const litRe = new RegExp(`^(?:${litSrc})$`, 'i');
  const atomRe = new RegExp(`^(?:${atomSrc})$`, 'i');
  // names are ASCII, so the ASCII range decides
  for (let code = 0; code < 128; code++) {
    const ch = String.fromCharCode(code);
    if (litRe.test(ch) && atomRe.test(ch)) return true;
  }
  return false;
}

/** Items of a sequence with plain (unquantified, single-branch) groups flattened into it. */
function flatten(items: Item[]): Item[] {
  const out: Item[] = [];
  for (const it of items) {
    if (it.atom.t === 'group' && it.q === undefined && it.atom.alts.length === 1) out.push(...flatten(it.atom.alts[0] ?? []));
    else out.push(it);
  }
  return out;
}

/** Rule 2: the body of a repeated group. */
function checkRepeatedBody(alts: Item[][]): void {
  if (alts.length > 1) {
    throw new Refusal('alternation inside a repeated group (like (a|a)*) can backtrack exponentially', 'use a character class such as [ab]*, or list the names in fqdns');
  }
  const body = flatten(alts[0] ?? []);
  for (let k = 0; k < body.length; k++) {
    const it = body[k] as Item;
    if (it.atom.t === 'group') {
      if (it.atom.alts.length > 1) {
        throw new Refusal('alternation inside a repeated group (like (a|a)*) can backtrack exponentially', 'use a character class such as [ab]*, or list the names in fqdns');
      }
      throw new Refusal('a quantified group inside a repeated group (like (a+)+ or ((ab)?c)*) can backtrack exponentially', 'use one level of repetition, or fqdns patterns such as .example.com');
    }
    if (it.q === undefined || !isSingle(it.atom)) continue;
    // the delimiter: the next item, or the first item of the next iteration
    const next = k + 1 < body.length ? body[k + 1] : body[0];
    if (next === undefined || next === it || next.q !== undefined || next.atom.t !== 'char' || atomMatches(it.atom.src, next.atom.src)) {
      throw new Refusal(
        'nested quantifiers (like (a+)+) can backtrack exponentially; inside a repeated group a quantifier must be followed by a literal it cannot match',
        'write the delimited form, e.g. ([a-z0-9-]+\\.)*, or use fqdns patterns such as .example.com',
      );
    }
  }
}

interface Counts {
  freeRepeat: number;
  freeOptional: number;
}

const END = '$';
type FirstSet = string[] | null; // literal sources that can come next, END for the end of the name; null = unknown

/** What can start the text matched from item k on (then `rest`), as far as literals tell. */
function first(items: Item[], k: number, rest: () => FirstSet): FirstSet {
  if (k >= items.length) return rest();
  const it = items[k] as Item;
  const after = (): FirstSet => first(items, k + 1, rest);
  let here: FirstSet;
  if (it.atom.t === 'anchor') return it.atom.src === '$' ? [END] : after(); // ^, \b, \B take no characters
  if (it.atom.t === 'char') here = [it.atom.src];
  else if (it.atom.t === 'group') {
    here = [];
    for (const alt of it.atom.alts) {
      const f = first(alt, 0, after);
      if (f === null) return null;
      here.push(...f);
    }
  } else return null;
  if (it.q !== undefined && it.q.min === 0) {
    const a = after();
    if (a === null) return null;
    here.push(...a);
  }
  return here;
}

/**
 * Counts the repetitions and optional parts whose extent is not fixed by what follows them. A
 * quantified character/class followed only by literals it cannot match (or the end of the name)
 * has one way to match, whatever the input; anything else multiplies the work.
 */
function walk(items: Item[], counts: Counts, rest: () => FirstSet): void {
  const flat = flatten(items);
  for (let k = 0; k < flat.length; k++) {
    const it = flat[k] as Item;
    const after = (): FirstSet => first(flat, k + 1, rest);
    if (it.atom.t === 'group') {
      if (repeats(it.q)) {
        checkRepeatedBody(it.atom.alts);
        counts.freeRepeat++;
      } else {
        if (it.q !== undefined) counts.freeOptional++;
        for (const alt of it.atom.alts) walk(alt, counts, after);
      }
      continue;
    }
    if (it.q === undefined || !isSingle(it.atom)) continue;
    const next = after();
    const src = it.atom.src;
    const delimited = next !== null && next.every((lit) => lit === END || !atomMatches(src, lit));
    if (delimited) continue;
    if (repeats(it.q)) counts.freeRepeat++;
    else counts.freeOptional++;
  }
}

export const MAX_REGEX_LENGTH = 512;

/** Checks a pattern that already compiles. */
export function checkRegexSafety(pattern: string): RegexCheck {
  if (pattern.length > MAX_REGEX_LENGTH) return { ok: false, message: `pattern is ${pattern.length} characters; at most ${MAX_REGEX_LENGTH}` };
  try {
    const parser = new Parser(pattern);
    const alts = parser.alts();
    const counts: Counts = { freeRepeat: 0, freeOptional: 0 };
    for (const alt of alts) walk(alt, counts, () => [END]);
    if (counts.freeRepeat > 1) {
      return {
        ok: false,
        message: `${counts.freeRepeat} unconstrained repetitions (like .* ... .*) can take polynomial time on long names; at most 1`,
        fix: 'use [^.]* to stay within one label, or split the pattern into several rules',
      };
    }
    if (counts.freeOptional > 8) return { ok: false, message: `${counts.freeOptional} optional parts; at most 8`, fix: 'split the pattern into several rules' };
    return { ok: true };
  } catch (e) {
    if (e instanceof Refusal) return e.fix === undefined ? { ok: false, message: e.message } : { ok: false, message: e.message, fix: e.fix };
    throw e;
  }
}

/**
 * The places where a pattern uses a bare `.` that is not quantified, which nearly always meant a
 * literal dot (`ads.example.com` also matches `adsXexample.com`). Returns the pattern with those
 * dots escaped, or undefined when there are none.
 */
export function escapeBareDots(pattern: string): string | undefined {
  let out = '';
  let changed = false;
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\') {
      out += c + (pattern[i + 1] ?? '');
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') inClass = true;
    if (c === '.' && !/[*+?{]/.test(pattern[i + 1] ?? '')) {
      out += '\\.';
      changed = true;
      continue;
    }
    out += c;
  }
  return changed ? out : undefined;
}
