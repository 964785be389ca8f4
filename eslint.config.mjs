// Lint for every project. The module-boundary constraints are the architecture's walls:
// pure parsers import no I/O, service libraries never import each other.
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

const io = ['net', 'node:net', 'tls', 'node:tls', 'fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'dgram', 'node:dgram', 'http', 'node:http', 'http2', 'node:http2', 'child_process', 'node:child_process', 'cluster', 'node:cluster', 'dns', 'node:dns', 'ioredis', '@grpc/*', 'grpc-health-check', 'pino', '@opentelemetry/*'];

export default [
  { ignores: ['**/dist/**', '**/node_modules/**', '**/generated/**', '**/*.mjs', '**/*.mts', '.nx/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { '@nx': nx },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': ['error', { allow: ['error'] }],
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allow: [],
          depConstraints: [
            { sourceTag: 'type:pure', onlyDependOnLibsWithTags: ['type:pure'], bannedExternalImports: io },
            { sourceTag: 'type:infra', onlyDependOnLibsWithTags: ['type:pure', 'type:infra', 'type:testing'] },
            { sourceTag: 'type:testing', onlyDependOnLibsWithTags: ['type:pure', 'type:infra'] },
            { sourceTag: 'type:service', onlyDependOnLibsWithTags: ['type:pure', 'type:infra', 'type:testing'] },
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:pure', 'type:infra', 'type:service', 'type:testing'] },
          ],
        },
      ],
    },
  },
  {
    // Node's I/O built-ins are not "external imports" to the Nx rule: ban them here for pure libs.
    files: ['libs/sniff/src/**/*.ts', 'libs/fqdn-policy/src/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: io.filter((m) => !m.includes('*')).map((name) => ({ name, message: 'pure libraries do no I/O' })), patterns: [{ group: ['@grpc/*', '@opentelemetry/*'], message: 'pure libraries do no I/O' }] }] },
  },
  {
    files: ['apps/cli/**/*.ts', 'test/**/*.ts', 'tools/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
];
