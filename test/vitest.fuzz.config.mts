// `npm run fuzz`: the long property runs of the pure parsers (FUZZ_RUNS cases in total, default 10,000,000).
import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';
import { alias } from '../vitest.base.mts';

export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  resolve: { alias },
  test: {
    include: ['test/fuzz/**/*.fuzz.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 4 * 60 * 60 * 1000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['verbose'],
  },
});
