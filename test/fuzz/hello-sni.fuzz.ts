// Long run of the express lane's property: the relay's C reader (native/relay hello.c) never reads a
// name libs/sniff would not read from the same bytes. `npm run fuzz` (FUZZ_RUNS cases, default
// 1,000,000 here; FUZZ_SEED to replay). The short run is in test/integration/express-lane.spec.ts.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { capturedHellos } from '../../libs/sniff/src/fixtures/hellos';
import { mutate, mutationArb } from '../../libs/sniff/src/testing/arbitraries';
import { builtHellos } from '../../libs/sniff/src/testing/built-hellos';
import { modelHelloArb } from '../../libs/sniff/src/testing/properties';
import { framedRandomHelloArb, helloSniAgrees } from '../support/hello-sni';

const TOTAL = Number(process.env['FUZZ_RUNS'] ?? 1_000_000);
const SEED = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : Date.now() % 2 ** 31;
const seeds = [...Object.values(capturedHellos).map((h) => Buffer.from(h, 'hex')), ...builtHellos.map((b) => b.wire)];

describe(`the relay's hello reader against libs/sniff (seed ${SEED})`, () => {
  it('generated hellos', () => {
    let read = 0;
    fc.assert(
      fc.property(modelHelloArb, (m) => {
        if (helloSniAgrees(m.wire)) read++;
      }),
      { numRuns: Math.ceil(TOTAL * 0.4), seed: SEED },
    );
    expect(read).toBeGreaterThan(0);
  });
  it('mutated hellos', () => {
    fc.assert(
      fc.property(fc.constantFrom(...seeds), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (seed, mutations) => {
        helloSniAgrees(mutations.reduce<Buffer>((w, m) => mutate(w, m), seed));
      }),
      { numRuns: Math.ceil(TOTAL * 0.4), seed: SEED },
    );
  });
  it('random bytes behind a plausible record and handshake header', () => {
    fc.assert(
      fc.property(framedRandomHelloArb, (wire) => {
        helloSniAgrees(wire);
      }),
      { numRuns: Math.ceil(TOTAL * 0.2), seed: SEED },
    );
  });
});
