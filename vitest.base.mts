// Shared Vitest settings: resolves the @portcullis/* aliases to sources so specs run without a build.
import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('.', import.meta.url));
const libs = ['contracts', 'sniff', 'fqdn-policy', 'flow-events', 'platform', 'testing', 'edge', 'policy', 'audit'];

export const alias = {
  '@portcullis/platform/telemetry': `${root}libs/platform/src/telemetry.ts`,
  ...Object.fromEntries(libs.map((l) => [`@portcullis/${l}`, `${root}libs/${l}/src/index.ts`])),
};

export default defineConfig({
  resolve: { alias },
  test: {
    include: ['**/*.spec.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
