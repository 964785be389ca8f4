// Starts a private redis-server on a free loopback port, so tests are isolated and can kill/restart it.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports';

export interface TestRedis {
  port: number;
  url: string;
  dir: string;
  /** SIGKILL: the server vanishes with no goodbye. */
  kill(): Promise<void>;
  /** Starts again on the same port (and data dir, so AOF survives). */
  restart(): Promise<void>;
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

function ping(port: number, tlsOpts?: { ca: Buffer }): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tlsOpts ? tlsConnect({ host: '127.0.0.1', port, ca: tlsOpts.ca, servername: 'localhost' }) : createConnection({ host: '127.0.0.1', port });
    let buf = '';
    s.setTimeout(500, () => {
      s.destroy();
      resolve(false);
    });
    s.on(tlsOpts ? 'secureConnect' : 'connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) {
        s.destroy();
        resolve(buf.startsWith('+PONG') || buf.startsWith('-NOAUTH'));
      }
    });
    s.on('error', () => resolve(false));
  });
}

/**
 * `tls`: serve TLS only (no plain port), with this server certificate; `users`: ACL users as
 * [name, password] (the default user is then disabled).
 */
export async function startRedis(opts: { appendonly?: boolean; args?: string[]; tls?: { certPath: string; keyPath: string; caPath: string }; users?: [string, string][] } = {}): Promise<TestRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-redis-'));
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const tlsArgs = opts.tls ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', opts.tls.certPath, '--tls-key-file', opts.tls.keyPath, '--tls-ca-cert-file', opts.tls.caPath, '--tls-auth-clients', 'optional'] : ['--port', String(port)];
    const userArgs = (opts.users ?? []).flatMap(([u, pw]) => ['--user', u, 'on', `>${pw}`, '~*', '&*', '+@all']).concat(opts.users?.length ? ['--user', 'default', 'off'] : []);
    const args = [...tlsArgs, '--bind', '127.0.0.1', '--save', '', '--dir', dir, '--appendonly', opts.appendonly ? 'yes' : 'no', '--appendfsync', 'always', ...userArgs, ...(opts.args ?? [])];
    child = spawn('redis-server', args, { stdio: 'ignore' });
    const until = Date.now() + 10_000;
    while (!(await ping(port, opts.tls ? { ca: readFileSync(opts.tls.caPath) } : undefined))) {
      if (Date.now() > until) throw new Error(`redis-server did not start on ${port}`);
      await new Promise((r) => setTimeout(r, 30));
    }
  };
  const exit = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill(signal);
    });
  };
  await launch();
  return {
    port,
    url: `${opts.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    dir,
    kill: () => exit('SIGKILL'),
    restart: launch,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    stop: async () => {
      child?.kill('SIGCONT');
      await exit('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
