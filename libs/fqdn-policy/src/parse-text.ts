// Profile text (YAML or JSON) to a validated profile. JSON takes a fast path (JSON.parse is two
// orders of magnitude faster than a YAML parser on a million-name list) with its own duplicate-key
// check, so that both forms refuse `defaultAction` written twice.
import { LineCounter, parseDocument } from 'yaml';
import type { Document } from 'yaml';
import type { ParseResult, ValidationProblem } from './types';
import { validateProfile } from './validate';

function firstNonSpace(text: string): string {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13 && c !== 0xfeff) return text[i] as string;
  }
  return '';
}

interface Frame {
  keys: Set<string> | undefined; // an object's keys; undefined for an array
  index: number;
  key: string;
}

function framePath(stack: Frame[]): string {
  let p = '';
  for (let k = 0; k < stack.length; k++) {
    const f = stack[k] as Frame;
    p = f.keys ? (p === '' ? f.key : `${p}.${f.key}`) : `${p}[${f.index}]`;
  }
  return p;
}

/** Keys written twice in one JSON object. The text must already be valid JSON. */
export function findDuplicateJsonKeys(text: string): ValidationProblem[] {
  const out: ValidationProblem[] = [];
  const stack: Frame[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      let j = i + 1;
      for (;;) {
        const q = text.indexOf('"', j);
        let bs = 0;
        while (text.charCodeAt(q - 1 - bs) === 92) bs++;
        j = q + 1;
        if (bs % 2 === 0) break;
      }
      if (expectKey) {
        const top = stack[stack.length - 1] as Frame;
        const key = JSON.parse(text.slice(i, j)) as string;
        top.key = key;
        if (top.keys?.has(key)) {
          out.push({ path: framePath(stack), message: `key "${key}" is written twice in one mapping`, fix: 'keep one of them' });
        }
        top.keys?.add(key);
        expectKey = false;
      }
      i = j - 1;
    } else if (c === 123) {
      stack.push({ keys: new Set(), index: 0, key: '' });
      expectKey = true;
    } else if (c === 91) {
      stack.push({ keys: undefined, index: 0, key: '' });
    } else if (c === 125 || c === 93) {
      stack.pop();
      expectKey = false;
    } else if (c === 58) {
      expectKey = false;
    } else if (c === 44) {
      const top = stack[stack.length - 1];
      if (top?.keys) expectKey = true;
      else if (top) top.index++;
    }
  }
  return out;
}

function pathSegments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : (m[1] as string));
  return out;
}

/** Adds the YAML line of each path to the problems (for people reading an editor). */
function withLines(problems: ValidationProblem[], doc: Document, lines: LineCounter): ValidationProblem[] {
  return problems.map((p) => {
    if (p.path === '') return p;
    const node = doc.getIn(pathSegments(p.path), true) as { range?: [number, number, number] } | undefined;
    const offset = node?.range?.[0];
    return offset === undefined ? p : { ...p, line: lines.linePos(offset).line };
  });
}

/** Parses profile text, YAML or JSON, and validates it. */
export function parseProfileText(text: string): ParseResult {
  if (firstNonSpace(text) === '') return { ok: false, problems: [{ path: '', message: 'the profile is empty' }], warnings: [] };
  if (firstNonSpace(text) === '{') {
    let parsed: unknown;
    let json = true;
    try {
      parsed = JSON.parse(text);
    } catch {
      json = false; // not strict JSON; the YAML parser reports where it breaks
    }
    if (json) {
      const dups = findDuplicateJsonKeys(text);
      const r = validateProfile(parsed);
      if (dups.length === 0) return r;
      return { ok: false, problems: [...dups, ...(r.ok ? [] : r.problems)], warnings: r.warnings };
    }
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const yamlWarnings: ValidationProblem[] = doc.warnings.map((w) => ({ path: '', message: `line ${lines.linePos(w.pos[0]).line}: ${w.message}` }));
  if (doc.errors.length > 0) {
    return { ok: false, problems: doc.errors.map((e) => ({ path: '', message: `line ${lines.linePos(e.pos[0]).line}, column ${lines.linePos(e.pos[0]).col}: ${e.message}` })), warnings: yamlWarnings };
  }
  let parsed: unknown;
  try {
    parsed = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { ok: false, problems: [{ path: '', message: `the YAML cannot be read: ${(e as Error).message}` }], warnings: yamlWarnings };
  }
  const r = validateProfile(parsed);
  if (r.ok) return { ...r, warnings: [...yamlWarnings, ...withLines(r.warnings, doc, lines)] };
  return { ok: false, problems: withLines(r.problems, doc, lines), warnings: [...yamlWarnings, ...withLines(r.warnings, doc, lines)] };
}
