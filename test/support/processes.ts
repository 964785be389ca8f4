// Starts built Portcullis apps as separate processes and waits until they are ready.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';

export const ROOT = resolve(__dirname, '../..');

export interface Proc {
  name: string;
  child: ChildProcess;
  output: string[];
  /** SIGTERM, then SIGKILL after graceMs; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  kill(): Promise<void>;
}

export function writeConfig(dir: string, name: string, config: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, stringify(config));
  return path;
}

/** `nofile`: run under `prlimit --nofile=N:N`, so the process has that open-files limit from its first instruction. */
export function startApp(app: 'edge-proxy' | 'policy-service' | 'audit-service' | 'cli', args: string[], env: NodeJS.ProcessEnv = {}, opts: { nofile?: number } = {}): Proc {
  const main = join(ROOT, 'dist/apps', app, 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  const argv = [process.execPath, main, ...args];
  if (opts.nofile) argv.unshift('prlimit', `--nofile=${opts.nofile}:${opts.nofile}`, '--');
  const child = spawn(argv[0] as string, argv.slice(1), { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  // TEST_KEEP_OUTPUT_DIR: every child's output and how it ended, kept for a failure seen once
  const keep = process.env['TEST_KEEP_OUTPUT_DIR'];
  if (keep) child.once('exit', (code, signal) => writeFileSync(join(keep, `${app}-${child.pid}.log`), `${output.join('')}\n[exit code ${code} signal ${signal}]\n`));
  return {
    name: app,
    child,
    output,
    stop: async (graceMs = 5_000) => {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
    kill: async () => {
      if (child.exitCode !== null || child.signalCode) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((r) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      r(true);
    });
    s.once('error', () => r(false));
  });
}

/** Waits until the process printed `text` (e.g. a log message) or fails with its output. */
export async function waitForOutput(p: Proc, text: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!p.output.join('').includes(text)) {
    if (p.child.exitCode !== null) throw new Error(`${p.name} exited ${p.child.exitCode}:\n${p.output.join('')}`);
    if (Date.now() > until) throw new Error(`${p.name} did not print "${text}" within ${timeoutMs} ms:\n${p.output.join('')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
