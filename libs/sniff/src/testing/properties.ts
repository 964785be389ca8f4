// The ClientHello reader's contract as executable checks, shared by the short property spec and the long fuzz run.
// Each check throws an Error describing the first violation; callers wrap them in fast-check properties.
import fc from 'fast-check';
import type { HelloResult, InvalidHelloReason, SniResult } from '../client-hello';
import { MAX_CLIENT_HELLO_BYTES, isGrease, readClientHello } from '../client-hello';
import { normalizeName } from '../names';
import type { HelloExtension, HelloSpec } from './build-hello';
import { buildHandshake, frameRecords, helloExtensions as ext } from './build-hello';
import { comparable, deliver, deliverBytewise, deliverWhole } from './deliver';
import { referenceParse } from './reference';

const REASONS = new Set<InvalidHelloReason>([
  'record-version',
  'record-length',
  'record-type',
  'handshake-type',
  'hello-length',
  'hello-version',
  'session-id-length',
  'cipher-suites-length',
  'compression-length',
  'extensions-length',
  'extension-length',
  'duplicate-extension',
  'sni-length',
  'alpn-length',
  'supported-versions-length',
  'supported-groups-length',
  'ech-length',
  'hello-trailing-data',
]);

function check(cond: boolean, message: string, detail?: unknown): void {
  if (!cond) throw new Error(detail === undefined ? message : `${message}: ${JSON.stringify(detail)}`);
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** What the SNI result must be for these host_name entries (wire order, latin1). */
export function expectedSni(hostNames: string[] | undefined): SniResult {
  if (hostNames === undefined) return { kind: 'none' };
  if (hostNames.length > 1) return { kind: 'multiple', names: hostNames };
  const raw = hostNames[0];
  if (raw === undefined || raw === '') return { kind: 'empty' };
  const r = normalizeName(raw);
  if (r.ok) return { kind: 'name', name: r.name };
  return r.problem === 'ip-literal' ? { kind: 'ip-literal', raw } : { kind: 'invalid', raw, problem: r.problem };
}

/**
 * Any input whatsoever: the outcome is well-formed, the same for the given chunking as for one push, decided
 * at a byte after which more bytes change nothing and before which the answer was need-more; a hello is
 * confirmed by the naive reference reader. `bytewise`: also deliver one byte per push (slow on big inputs).
 */
export function checkAnyInput(wire: Uint8Array, cuts: readonly number[], bytewise = false): HelloResult {
  const whole = deliverWhole(wire);
  const r = whole.result;
  check(['need-more', 'hello', 'not-tls', 'invalid', 'too-large'].includes(r.kind), 'unknown outcome', r);
  if (r.kind === 'invalid') check(REASONS.has(r.reason), 'unknown reason', r);
  const chunked = deliver(
    wire,
    cuts.map((c) => c % (wire.length + 1)),
  );
  check(same(chunked.result, r), 'chunking changed the outcome', { whole: r, chunked: chunked.result, cuts });
  if (bytewise) {
    const b = deliverBytewise(wire);
    check(same(b.result, r), 'one-byte reads changed the outcome', { whole: r, bytewise: b.result });
    if (r.kind !== 'need-more') check(b.decidedAt === whole.bytesSeen, 'decided at a different byte', { bytewise: b.decidedAt, whole: whole.bytesSeen });
  }
  if (r.kind === 'need-more') {
    check(whole.bytesSeen === wire.length, 'need-more without consuming everything');
    return r;
  }
  const at = whole.bytesSeen;
  check(at >= 1 && at <= wire.length, 'decision point outside the input', at);
  check(readClientHello(wire.subarray(0, at - 1)).kind === 'need-more', 'decided before the deciding byte', { at, r });
  check(same(readClientHello(wire.subarray(0, at)), r), 'the deciding prefix gives another outcome', { at, r });
  if (r.kind === 'hello') {
    check(r.helloBytes === at, 'helloBytes is not where the hello ended', { helloBytes: r.helloBytes, at });
    check(r.helloBytes <= MAX_CLIENT_HELLO_BYTES, 'a hello over the cap');
    const ref = referenceParse(wire);
    check(ref !== undefined, 'the reference reader rejects a hello');
    if (ref) {
      check(ref.helloBytes === r.helloBytes, 'reference disagrees on helloBytes', { ref: ref.helloBytes, ours: r.helloBytes });
      check(same(expectedSni(ref.hostNames), r.hello.sni), 'reference disagrees on SNI', { ref: ref.hostNames, ours: r.hello.sni });
      check(same(ref.extensions, r.hello.extensions), 'reference disagrees on extensions');
      check(same(ref.cipherSuites, r.hello.cipherSuites), 'reference disagrees on cipher suites');
      check(same(ref.alpn, r.hello.alpn), 'reference disagrees on ALPN');
      check(ref.legacyVersion === r.hello.legacyVersion, 'reference disagrees on legacy version');
    }
    check(!r.hello.cipherSuites.some(isGrease) && !r.hello.extensions.some(isGrease) && !r.hello.supportedVersions.some(isGrease), 'GREASE left in a list');
  }
  return r;
}

/** A well-formed hello ending the input must parse to the same info however it is framed or followed. */
export function checkValidHello(wire: Uint8Array, cuts: readonly number[], bytewise = false): void {
  const r = checkAnyInput(wire, cuts, bytewise);
  check(r.kind === 'hello' || (r.kind === 'too-large' && wire.length > MAX_CLIENT_HELLO_BYTES), 'a valid hello was not read', r);
  if (r.kind !== 'hello') return;
  check(r.helloBytes === wire.length, 'helloBytes is not the hello length');
  for (const cut of cuts) {
    const k = cut % wire.length;
    check(readClientHello(wire.subarray(0, k)).kind === 'need-more', 'a truncated hello was not need-more', k);
  }
  const followed = Buffer.concat([wire, Buffer.from('140303000101170303000568656c6c6f', 'hex')]);
  check(same(comparable(deliverWhole(followed).result), comparable(r)), 'trailing records changed the outcome');
}

// ---- generators of well-formed hellos with a model of what the reader must answer ----

export interface ModelHello {
  wire: Buffer;
  hostNames: string[] | undefined;
  alpn: string[];
  cipherSuites: number[];
  extensions: number[];
  grease: boolean;
}

const u16Arb = fc.integer({ min: 0, max: 0xffff });
const greaseArb = fc.integer({ min: 0, max: 15 }).map((i) => i * 0x1010 + 0x0a0a);
const nameBytes = fc.oneof(
  fc.domain().map((d) => Buffer.from(d, 'latin1')),
  fc.constantFrom('example.test', 'EXAMPLE.test.', '1.2.3.4', '::1', '', 'a..b', 'x.com..', 'bad name').map((s) => Buffer.from(s, 'latin1')),
  fc.uint8Array({ maxLength: 70 }).map((u) => Buffer.from(u)),
);

/** Random well-formed ClientHellos (structure-aware), with the values the reader must extract. */
export const modelHelloArb: fc.Arbitrary<ModelHello> = fc
  .record({
    sessionId: fc.uint8Array({ maxLength: 32 }),
    suites: fc.array(fc.oneof(u16Arb, greaseArb), { minLength: 1, maxLength: 40 }),
    sni: fc.option(fc.array(fc.record({ type: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 255 })), name: nameBytes }), { maxLength: 3 }), { nil: undefined }),
    alpn: fc.option(fc.array(fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 20 }).map((u) => Buffer.from(u)), greaseArb.map((g) => Buffer.from([g >> 8, g & 0xff]))), { minLength: 1, maxLength: 6 }), { nil: undefined }),
    versions: fc.option(fc.array(fc.oneof(u16Arb, greaseArb), { minLength: 1, maxLength: 6 }), { nil: undefined }),
    groups: fc.option(fc.array(fc.oneof(u16Arb, greaseArb), { minLength: 1, maxLength: 8 }), { nil: undefined }),
    ech: fc.option(fc.oneof(fc.constant('inner' as const), fc.record({ configId: fc.nat({ max: 255 }), encLength: fc.nat({ max: 64 }), payloadLength: fc.integer({ min: 1, max: 300 }) })), { nil: undefined }),
    others: fc.uniqueArray(fc.record({ type: fc.oneof(u16Arb, greaseArb), data: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 6, selector: (e) => e.type }),
    padding: fc.option(fc.nat({ max: 3000 }), { nil: undefined }),
    order: fc.nat(),
    recordSizes: fc.oneof(fc.constant<number[]>([16384]), fc.array(fc.integer({ min: 1, max: 16384 }), { minLength: 1, maxLength: 5 })),
  })
  .map((g) => {
    const exts: HelloExtension[] = [];
    if (g.sni) exts.push(ext.serverName(g.sni.map((e) => ({ type: e.type, name: e.name }))));
    if (g.alpn) exts.push(ext.alpn(g.alpn));
    if (g.versions) exts.push(ext.supportedVersions(g.versions));
    if (g.groups) exts.push(ext.supportedGroups(g.groups));
    if (g.ech) exts.push(g.ech === 'inner' ? ext.echInner() : ext.echOuter(g.ech));
    if (g.padding !== undefined) exts.push(ext.padding(g.padding));
    const known = new Set([0x0000, 0x0010, 0x002b, 0x000a, 0xfe0d, 0x0015]);
    for (const o of g.others) if (!known.has(o.type)) exts.push(ext.raw(o.type, o.data));
    // rotate: extension order must not matter
    const k = exts.length === 0 ? 0 : g.order % exts.length;
    const ordered = [...exts.slice(k), ...exts.slice(0, k)];
    const spec: HelloSpec = { sessionId: g.sessionId, cipherSuites: g.suites, extensions: ordered };
    const wire = frameRecords(buildHandshake(spec), { recordSizes: g.recordSizes });
    const isG = (v: number): boolean => isGrease(v);
    const grease = g.suites.some(isG) || ordered.some((e) => isG(e.type)) || (g.versions ?? []).some(isG) || (g.groups ?? []).some(isG) || (g.alpn ?? []).some((a) => a.length === 2 && isG(a.readUInt16BE(0)));
    return {
      wire,
      hostNames: g.sni ? g.sni.filter((e) => e.type === 0).map((e) => e.name.toString('latin1')) : undefined,
      alpn: (g.alpn ?? []).filter((a) => !(a.length === 2 && isG(a.readUInt16BE(0)))).map((a) => a.toString('latin1')),
      cipherSuites: g.suites.filter((s) => !isG(s)),
      extensions: ordered.map((e) => e.type).filter((t) => !isG(t)),
      grease,
    };
  });

/** The reader extracts exactly what the generator put in. */
export function checkModelHello(m: ModelHello, cuts: readonly number[]): void {
  const r = readClientHello(m.wire);
  if (m.wire.length > MAX_CLIENT_HELLO_BYTES) {
    check(r.kind === 'too-large', 'an over-cap hello was not too-large', r);
    return;
  }
  check(r.kind === 'hello', 'a generated hello was not read', r);
  if (r.kind !== 'hello') return;
  const sni = expectedSni(m.hostNames);
  check(same(r.hello.sni, sni), 'SNI differs from the model', { got: r.hello.sni, want: sni });
  check(same(r.hello.alpn, m.alpn), 'ALPN differs from the model');
  check(same(r.hello.cipherSuites, m.cipherSuites), 'cipher suites differ from the model');
  check(same(r.hello.extensions, m.extensions), 'extensions differ from the model');
  check(r.hello.grease === m.grease, 'grease flag differs from the model');
  checkValidHello(m.wire, cuts);
}
