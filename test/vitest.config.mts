// Cross-process tests: integration (libs + real Redis/gRPC) and e2e (built apps as processes).
import { defineConfig } from 'vitest/config';
import { alias } from '../vitest.base.mts';

export default defineConfig({
  resolve: { alias },
  test: {
    include: ['test/integration/**/*.spec.ts', 'test/e2e/**/*.spec.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
