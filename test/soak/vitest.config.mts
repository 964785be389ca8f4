// `npm run soak`: the long run of the reliability suite (test/soak/*.soak.ts). Sizes scale with
// SOAK_SCALE (1 = the figures: 1,000 + 1,000 hostile connections, 10,000 concurrent
// flows held SOAK_HOLD_MS = 60 s, 100,000 sequential flows); see test/soak/README.md.
import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';
import { alias } from '../../vitest.base.mts';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  resolve: { alias },
  test: {
    include: ['test/soak/**/*.soak.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 2 * 60 * 60 * 1000,
    hookTimeout: 120_000,
    pool: 'forks',
    // retention.soak.ts weighs the heap after full collections
    execArgv: ['--expose-gc'],
    fileParallelism: false,
    reporters: ['verbose'],
  },
});
