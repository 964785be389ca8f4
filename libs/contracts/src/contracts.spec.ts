import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { findProtoDir, loadContracts, PROTO_FILES } from './load';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

describe('contracts', () => {
  it('loads both services with every method the architecture names', () => {
    const c = loadContracts();
    const decision = Object.keys(c.portcullis.v1.PolicyDecision.service);
    const admin = Object.keys(c.portcullis.v1.PolicyAdmin.service);
    expect(decision.sort()).toEqual(['Decide', 'DecideStream', 'WatchPolicy']);
    expect(admin.sort()).toEqual(['ApplyPolicy', 'Explain', 'GetPolicy', 'History', 'ValidatePolicy']);
    expect(c.portcullis.v1.PolicyDecision.service.DecideStream.requestStream).toBe(true);
    expect(c.portcullis.v1.PolicyDecision.service.WatchPolicy.responseStream).toBe(true);
  });

  it('generated types match the protos (run `npm run gen` after changing proto/)', () => {
    const root = join(findProtoDir(), '..');
    const out = mkdtempSync(join(tmpdir(), 'contracts-'));
    execFileSync(
      join(root, 'node_modules/.bin/proto-loader-gen-types'),
      ['--longs=Number', '--enums=String', '--defaults', '--oneofs', '--keepCase', '--grpcLib=@grpc/grpc-js', '-I', 'proto', '-O', out, ...PROTO_FILES],
      { cwd: root },
    );
    const committed = join(root, 'libs/contracts/src/generated');
    const fresh = files(out).map((f) => relative(out, f)).sort();
    expect(files(committed).map((f) => relative(committed, f)).sort()).toEqual(fresh);
    for (const f of fresh) expect(readFileSync(join(committed, f), 'utf8'), f).toBe(readFileSync(join(out, f), 'utf8'));
  });
});
