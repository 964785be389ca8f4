// The edge's N-API addons (native/*, built by `npm ci` through the prepare script): found by
// walking up from the bundle (dist/apps/edge-proxy) or the working directory to the repository
// or image root that holds native/.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

/** `native/<dir>/build/Release/<file>.node`, or undefined when it was not built. */
export function findAddon(relative: string): string | undefined {
  for (const start of [typeof __dirname === 'string' ? __dirname : process.cwd(), process.cwd()]) {
    let dir = resolve(start);
    for (;;) {
      if (existsSync(join(dir, relative))) return join(dir, relative);
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return undefined;
}

export function requireAddon<T>(path: string): T {
  return createRequire(join(process.cwd(), 'noop.js'))(path) as T;
}
