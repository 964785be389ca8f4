// Runs commands for tests: the built `portcullis` CLI, or any tool (curl, openssl) with stdin closed.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './processes';

export interface RunResult {
  code: number;
  out: string;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 20_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}\n${stderr}` }));
    child.stdin?.end(); // tools like openssl s_client would otherwise wait for input
  });
}

/** `node bin/portcullis …` from the repository root. */
export function cli(args: string[]): Promise<RunResult> {
  return run(process.execPath, [join(ROOT, 'bin/portcullis'), ...args], { cwd: ROOT, timeoutMs: 30_000 });
}
