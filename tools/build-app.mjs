// Bundles one app (apps/<name>/src/main.ts) into dist/apps/<name>/main.js.
// Our own libs are inlined through the tsconfig paths; npm packages stay external so
// OpenTelemetry's require hooks still see @grpc/grpc-js and ioredis being loaded.
import { build } from 'esbuild';

const name = process.argv[2];
if (!name) throw new Error('usage: build-app.mjs <app-name>');
await build({
  entryPoints: [`apps/${name}/src/main.ts`],
  outfile: `dist/apps/${name}/main.js`,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  packages: 'external',
  sourcemap: true,
  tsconfig: 'tsconfig.base.json',
  logLevel: 'warning',
});
