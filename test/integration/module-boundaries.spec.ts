// The architecture's walls are enforced by lint: pure libraries import no I/O and service
// libraries never import each other. These checks make sure the rules really bite.
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/processes';

async function errors(filePath: string, code: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: ROOT });
  const [result] = await eslint.lintText(code, { filePath: `${ROOT}/${filePath}` });
  return (result?.messages ?? []).filter((m) => m.severity === 2).map((m) => `${m.ruleId}: ${m.message}`);
}

describe('module boundaries', () => {
  it.each([
    ["import { createServer } from 'node:net';", 'no-restricted-imports'],
    ["import { readFileSync } from 'fs';", 'no-restricted-imports'],
    ["import { Redis } from 'ioredis';", '@nx/enforce-module-boundaries'],
    ["import * as grpc from '@grpc/grpc-js';", '@nx/enforce-module-boundaries'],
    ["import pino from 'pino';", '@nx/enforce-module-boundaries'],
    ["import { startEdgeProxy } from '@portcullis/edge';", '@nx/enforce-module-boundaries'],
  ])('a pure library may not: %s', async (line, rule) => {
    for (const lib of ['libs/sniff/src/probe.ts', 'libs/fqdn-policy/src/probe.ts']) {
      expect((await errors(lib, `${line}\nexport const probe = 1;\n`)).some((e) => e.startsWith(rule))).toBe(true);
    }
  });

  it('a service library may not import another service library', async () => {
    const e = await errors('libs/edge/src/probe.ts', "import { startPolicyService } from '@portcullis/policy';\nexport const probe = startPolicyService;\n");
    expect(e.some((m) => m.startsWith('@nx/enforce-module-boundaries'))).toBe(true);
    const a = await errors('libs/audit/src/probe.ts', "import { startEdgeProxy } from '@portcullis/edge';\nexport const probe = startEdgeProxy;\n");
    expect(a.some((m) => m.startsWith('@nx/enforce-module-boundaries'))).toBe(true);
  });

  it('what the layering allows still passes', async () => {
    expect(await errors('libs/edge/src/probe.ts', "import { normalizeName } from '@portcullis/sniff';\nimport { createServer } from 'node:net';\nexport const probe = [normalizeName, createServer];\n")).toEqual([]);
    expect(await errors('libs/fqdn-policy/src/probe.ts', "import { normalizeName } from '@portcullis/sniff';\nexport const probe = normalizeName;\n")).toEqual([]);
  });
});
