// External tools the process-level scenarios need (wrk, nginx with the stream module, redis-server,
// openssl). CI machines start fresh, so missing apt packages are installed here, idempotently; when
// apt cannot be used the candidate that needs the tool is skipped with a note saying why.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Thrown when a scenario cannot run here (a tool is missing and cannot be installed): reported as skipped. */
export class BenchSkip extends Error {
  readonly skip = true;
}

export function which(bin: string): string | undefined {
  const r = spawnSync('bash', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

const STREAM_MODULES = ['/usr/lib/nginx/modules/ngx_stream_module.so', '/usr/share/nginx/modules/ngx_stream_module.so', '/usr/lib64/nginx/modules/ngx_stream_module.so'];

export interface NginxInfo {
  bin: string;
  version: string;
  /** a `load_module` line when the stream module is dynamic, '' when it is built in */
  loadStream: string;
}

/** nginx and how to get its stream module (with ssl_preread), or why not. */
export function nginxInfo(): NginxInfo | { missing: string } {
  const bin = which('nginx') ?? (existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : undefined);
  if (!bin) return { missing: 'nginx is not installed' };
  const v = spawnSync(bin, ['-V'], { encoding: 'utf8' });
  const text = `${v.stdout}${v.stderr}`;
  const version = /nginx version: (\S+)/.exec(text)?.[1] ?? 'nginx';
  if (/--with-stream(\s|$)/.test(text) && /--with-stream_ssl_preread_module/.test(text)) return { bin, version, loadStream: '' };
  const so = STREAM_MODULES.find((p) => existsSync(p));
  if (so) return { bin, version, loadStream: `load_module ${so};` };
  return { missing: `${version} has no stream module (apt package libnginx-mod-stream)` };
}

let ensured: { notes: string[] } | undefined;

/**
 * Installs wrk, nginx and libnginx-mod-stream from apt when any is missing (once per bench run).
 * Never fails: returns notes describing what was installed or why it could not be.
 */
export function ensureTools(): { notes: string[] } {
  if (ensured) return ensured;
  const notes: string[] = [];
  const needWrk = !which('wrk');
  const ng = nginxInfo();
  const needNginx = 'missing' in ng;
  if (!needWrk && !needNginx) return (ensured = { notes });
  const pkgs = [...(needWrk ? ['wrk'] : []), ...(needNginx ? ['nginx', 'libnginx-mod-stream'] : [])];
  if (process.env['BENCH_NO_INSTALL']) {
    notes.push(`not installing ${pkgs.join(' ')} (BENCH_NO_INSTALL is set)`);
    return (ensured = { notes });
  }
  const apt = which('apt-get');
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const sudo = !root && which('sudo') && spawnSync('sudo', ['-n', 'true']).status === 0;
  if (!apt || (!root && !sudo)) {
    notes.push(`cannot install ${pkgs.join(' ')}: ${!apt ? 'no apt-get on this machine' : 'not root and no passwordless sudo'}; candidates needing them are skipped`);
    return (ensured = { notes });
  }
  const run = (args: string[]): boolean => {
    const cmd = sudo ? 'sudo' : 'apt-get';
    const argv = sudo ? ['-n', 'apt-get', ...args] : args;
    console.log(`  bench: ${cmd} ${argv.join(' ')}`);
    const r = spawnSync(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 600_000 });
    return r.status === 0;
  };
  // Another apt run may hold the dpkg lock: wait for it rather than fail.
  const install = ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '-q', '--no-install-recommends', ...pkgs];
  let ok = run(install);
  if (!ok) ok = run(['-o', 'DPkg::Lock::Timeout=300', 'update', '-q']) && run(install);
  notes.push(ok ? `installed from apt: ${pkgs.join(' ')}` : `apt-get install ${pkgs.join(' ')} failed; candidates needing them are skipped`);
  return (ensured = { notes });
}

export function wrkVersion(): string {
  try {
    const r = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
    return (/wrk (\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? 'wrk').trim();
  } catch {
    return 'wrk';
  }
}

export function opensslVersion(): string {
  try {
    return execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'openssl (missing)';
  }
}
