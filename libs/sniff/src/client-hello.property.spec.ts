// Short property run (a few seconds); the long one is test/fuzz/sniff.fuzz.ts (`npm run fuzz`).
import { describe, it } from 'vitest';
import fc from 'fast-check';
import { capturedHellos } from './fixtures/hellos';
import { cutsArb, mutate, mutationArb } from './testing/arbitraries';
import { builtHellos } from './testing/built-hellos';
import { checkAnyInput, checkModelHello, checkValidHello, modelHelloArb } from './testing/properties';

const seeds = [...Object.values(capturedHellos).map((h) => Buffer.from(h, 'hex')), ...builtHellos.map((b) => b.wire)].filter((w) => w.length < 8192);
const seedArb = fc.constantFrom(...seeds);
const tlsPrefixed = fc.tuple(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 400 })).map(([h, rest]) => Buffer.concat([Buffer.from([0x16, 0x03, h[0] ?? 1, (h[1] ?? 0) & 1, h[2] ?? 0, 0x01, 0, h[3] ?? 0, h[4] ?? 0]), rest]));

describe('ClientHelloReader properties (short run)', () => {
  it('random bytes: never throws, stable across chunkings, decided at one byte', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), cutsArb, (bytes, cuts) => {
        checkAnyInput(bytes, cuts, true);
      }),
      { numRuns: 5000 },
    );
  });

  it('random bytes behind a plausible record and handshake header', () => {
    fc.assert(
      fc.property(tlsPrefixed, cutsArb, (bytes, cuts) => {
        checkAnyInput(bytes, cuts, true);
      }),
      { numRuns: 5000 },
    );
  });

  it('mutated fixtures (length lies, truncations, flips, insertions, re-framings)', () => {
    fc.assert(
      fc.property(seedArb, fc.array(mutationArb, { minLength: 1, maxLength: 3 }), cutsArb, (seed, mutations, cuts) => {
        const wire = mutations.reduce<Buffer>((w, m) => mutate(w, m), seed);
        checkAnyInput(wire, cuts, wire.length <= 3000);
      }),
      { numRuns: 10000 },
    );
  });

  it('fixtures in random chunks: the same hello every time', () => {
    fc.assert(
      fc.property(seedArb, cutsArb, (wire, cuts) => {
        checkValidHello(wire, cuts);
      }),
      { numRuns: 1000 },
    );
  });

  it('generated well-formed hellos: the reader extracts what was put in', () => {
    fc.assert(
      fc.property(modelHelloArb, cutsArb, (m, cuts) => {
        checkModelHello(m, cuts);
      }),
      { numRuns: 2000 },
    );
  });
});
