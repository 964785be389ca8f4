// Long fuzz run of the sniff parsers: `npm run fuzz` (FUZZ_RUNS total cases, default 10,000,000; FUZZ_SEED to replay).
// The properties are the same as the short run in libs/sniff/src/*.property.spec.ts, only many more cases.
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ConnectRequestReader, PROXY_V2_SIGNATURE, ProxyHeaderReader, SocksGreetingReader, SocksRequestReader, detectProtocol, readConnectRequest, readProxyHeader, readSocksGreeting, readSocksRequest } from '@portcullis/sniff';
import { capturedHellos } from '../../libs/sniff/src/fixtures/hellos';
import { cutsArb, mutate, mutationArb } from '../../libs/sniff/src/testing/arbitraries';
import { builtHellos } from '../../libs/sniff/src/testing/built-hellos';
import { checkAnyInput, checkModelHello, checkValidHello, modelHelloArb } from '../../libs/sniff/src/testing/properties';
import { checkDeliveries, deliverTo } from '../../libs/sniff/src/testing/streams';

const TOTAL = Number(process.env['FUZZ_RUNS'] ?? 10_000_000);
const SEED = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : Date.now() % 2 ** 31;
const BLOCK = 250_000;

const seeds = [...Object.values(capturedHellos).map((h) => Buffer.from(h, 'hex')), ...builtHellos.map((b) => b.wire)];
const smallSeeds = seeds.filter((w) => w.length < 8192);
const tlsPrefixed = fc.tuple(fc.uint8Array({ minLength: 5, maxLength: 5 }), fc.uint8Array({ maxLength: 600 })).map(([h, rest]) => Buffer.concat([Buffer.from([0x16, 0x03, (h[0] ?? 0) % 6, (h[1] ?? 0) & 3, h[2] ?? 0, 0x01, 0, (h[3] ?? 0) & 7, h[4] ?? 0]), rest]));

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
const connectLike = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.tuple(fc.constantFrom('CONNECT ', 'CONNECT example.test:443 HTTP/1.1\r\n', 'CONNECT [::1]:443 HTTP/1.1\r\nHost: x\r\n'), fc.string({ maxLength: 120 }), fc.uint8Array({ maxLength: 20 })).map(([p, t, u]) => Buffer.concat([latin1(p + t), u])),
  fc.tuple(fc.domain(), fc.integer({ min: 0, max: 70000 }), fc.array(fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 })), { maxLength: 4 })).map(([h, port, hs]) => latin1(`CONNECT ${h}:${port} HTTP/1.1\r\n${hs.map(([n, v]) => `${n}:${v}\r\n`).join('')}\r\n`)),
);
const socksLike = fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.tuple(fc.constantFrom(Buffer.from([5]), Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0, 3]), Buffer.from([5, 1, 0, 1]), Buffer.from([5, 1, 0, 4])), fc.uint8Array({ maxLength: 270 })).map(([p, r]) => Buffer.concat([p, r])));
const proxyLike = fc.oneof(
  fc.uint8Array({ maxLength: 140 }),
  fc.tuple(fc.constantFrom(latin1('PROXY '), latin1('PROXY TCP4 '), latin1('PROXY TCP6 '), latin1('PROXY UNKNOWN'), Buffer.from(PROXY_V2_SIGNATURE), Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11])]), Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0x00, 0x20])])), fc.uint8Array({ maxLength: 140 })).map(([p, r]) => Buffer.concat([p, r])),
  fc.tuple(fc.ipV4(), fc.ipV4(), fc.nat({ max: 70000 }), fc.nat({ max: 70000 }), fc.constantFrom('\r\n', '\n', '\r', '')).map(([a, b, c, d, e]) => latin1(`PROXY TCP4 ${a} ${b} ${c} ${d}${e}`)),
);
const cuts = fc.array(fc.nat({ max: 320 }), { maxLength: 12 });

/** whole vs random chunks for any reader, plus (1 case in 16) one byte per push and the decision prefix */
function checkStream<R extends { kind: string }>(make: () => { push(c: Uint8Array): R }, read: (b: Uint8Array) => R, bytes: Uint8Array, c: number[], k: number): void {
  const whole = read(bytes);
  expect(deliverTo(make, bytes, c).result).toEqual(whole);
  if (k === 0) expect(checkDeliveries(make, bytes, false).result).toEqual(whole);
}

interface Target {
  name: string;
  share: number;
  property: () => fc.IProperty<never> | fc.IProperty<unknown[]>;
}

const targets: Target[] = [
  {
    name: 'ClientHello: random bytes',
    share: 0.1,
    property: () => fc.property(fc.uint8Array({ maxLength: 400 }), cutsArb, fc.nat({ max: 15 }), (bytes, cuts, k) => void checkAnyInput(bytes, cuts, k === 0)),
  },
  {
    name: 'ClientHello: random bytes behind a plausible header',
    share: 0.1,
    property: () => fc.property(tlsPrefixed, cutsArb, fc.nat({ max: 15 }), (bytes, cuts, k) => void checkAnyInput(bytes, cuts, k === 0)),
  },
  {
    name: 'ClientHello: mutated fixtures',
    share: 0.35,
    property: () =>
      fc.property(fc.oneof({ weight: 20, arbitrary: fc.constantFrom(...smallSeeds) }, { weight: 1, arbitrary: fc.constantFrom(...seeds) }), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), cutsArb, fc.nat({ max: 31 }), (seed, mutations, cuts, k) => {
        const wire = mutations.reduce<Buffer>((w, m) => mutate(w, m), seed);
        checkAnyInput(wire, cuts, k === 0 && wire.length <= 4096);
      }),
  },
  {
    name: 'ClientHello: generated well-formed hellos',
    share: 0.12,
    property: () => fc.property(modelHelloArb, cutsArb, (m, cuts) => checkModelHello(m, cuts)),
  },
  {
    name: 'ClientHello: fixtures in random chunks',
    share: 0.03,
    property: () => fc.property(fc.constantFrom(...smallSeeds), cutsArb, (wire, cuts) => checkValidHello(wire, cuts)),
  },
  {
    name: 'HTTP CONNECT head',
    share: 0.1,
    property: () => fc.property(connectLike, cuts, fc.nat({ max: 15 }), (bytes, c, k) => checkStream(() => new ConnectRequestReader(), readConnectRequest, bytes, c, k)),
  },
  {
    name: 'SOCKS5 greeting and request',
    share: 0.07,
    property: () =>
      fc.property(socksLike, cuts, fc.nat({ max: 15 }), (bytes, c, k) => {
        checkStream(() => new SocksGreetingReader(), readSocksGreeting, bytes, c, k);
        checkStream(() => new SocksRequestReader(), readSocksRequest, bytes, c, k);
      }),
  },
  {
    name: 'PROXY v1/v2 header',
    share: 0.07,
    property: () => fc.property(proxyLike, cuts, fc.nat({ max: 15 }), (bytes, c, k) => checkStream(() => new ProxyHeaderReader(), readProxyHeader, bytes, c, k)),
  },
  {
    name: 'detectProtocol: random prefixes',
    share: 0.06,
    property: () =>
      fc.property(fc.uint8Array({ maxLength: 12 }), fc.uint8Array({ maxLength: 4 }), (bytes, more) => {
        const r = detectProtocol(bytes);
        if (r === 'need-more') expect(bytes.length).toBeLessThanOrEqual(8);
        else expect(detectProtocol(Buffer.concat([bytes, more]))).toBe(r);
      }),
  },
];

let cases = 0;
const started = Date.now();

afterAll(() => {
  const seconds = (Date.now() - started) / 1000;
  console.log(`fuzz: ${cases.toLocaleString('en')} cases in ${seconds.toFixed(1)} s (${Math.round(cases / seconds).toLocaleString('en')}/s), FUZZ_RUNS=${TOTAL}, FUZZ_SEED=${SEED}`);
});

describe(`sniff fuzz (FUZZ_RUNS=${TOTAL}, FUZZ_SEED=${SEED})`, () => {
  const weight = targets.reduce((s, t) => s + t.share, 0);
  targets.forEach((t, ti) => {
    const runs = Math.max(1, Math.round((TOTAL * t.share) / weight));
    const blocks = Math.ceil(runs / BLOCK);
    for (let b = 0; b < blocks; b++) {
      const n = Math.min(BLOCK, runs - b * BLOCK);
      const seed = (SEED + ti * 1_000_003 + b * 7919) % 2 ** 31;
      it(`${t.name} [${b + 1}/${blocks}] ${n} cases, seed ${seed}`, () => {
        fc.assert(t.property() as fc.IProperty<unknown[]>, { numRuns: n, seed });
        cases += n;
      });
    }
  });
});
