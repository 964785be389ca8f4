// `npm run bench` runs under tsx without a root tsconfig, so the @portcullis/* aliases of
// tsconfig.base.json do not resolve at run time: map them onto the library sources (once).
import Module from 'node:module';
import { join } from 'node:path';

const root = join(__dirname, '..', '..', '..');
let installed = false;

export function installAliases(): void {
  if (installed) return;
  installed = true;
  const M = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
  const resolveFilename = M._resolveFilename;
  M._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
    const m = /^@portcullis\/([a-z-]+)$/.exec(request);
    return resolveFilename.call(this, m ? join(root, 'libs', m[1] ?? '', 'src', 'index.ts') : request, ...rest);
  };
}
