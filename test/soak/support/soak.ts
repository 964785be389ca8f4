// Soak-run plumbing: sizes from the environment, the edge's memory and descriptors across its
// processes, the open-files budget, a report of figures, and the upstream child process.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { childPids, fdCount, MB, rssBytes } from './hostile';

/** SOAK_SCALE multiplies every count (1 = the figures); at least 1 of anything. */
export function scaled(full: number): number {
  const s = Number(process.env['SOAK_SCALE'] ?? '1');
  return Math.max(1, Math.round(full * (Number.isFinite(s) && s > 0 ? s : 1)));
}

export function envNumber(name: string, def: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : def;
}

/** The soft limit on open files of this process (children inherit it). */
export function openFilesLimit(): number {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m?.[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m?.[1] ?? 1024);
}

/**
 * Raises this process's open-files limit (soft and hard) to at least `want`, where allowed: above
 * the hard limit only as root (CAP_SYS_RESOURCE), never above fs.nr_open. The processes it starts
 * afterwards (edge, upstream, Redis) inherit it. Returns the limit now in force.
 */
export function raiseOpenFiles(want: number): number {
  const now = openFilesLimit();
  if (now >= want) return now;
  let max = want;
  try {
    max = Number(readFileSync('/proc/sys/fs/nr_open', 'utf8'));
  } catch {
    // no procfs limit to respect
  }
  const target = Math.min(want, max);
  const r = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${target}:${target}`], { encoding: 'utf8' });
  if (r.status !== 0) {
    // not allowed past the hard limit: up to it, then
    const hard = /Max open files\s+\S+\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    if (hard && Number(hard) > now) spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${hard}:${hard}`]);
    console.log(`[soak] could not raise the open-files limit to ${target} (${(r.stderr || r.error?.message || '').trim()}); it is ${openFilesLimit()}`);
  }
  return openFilesLimit();
}

/** The most connections the listen queue holds (net.core.somaxconn caps every listen backlog). */
export function listenQueueMax(): number {
  try {
    return Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8')) || 128;
  } catch {
    return 128;
  }
}

/** TCP listen-queue overflows so far (kernel-wide): when they rise, connections were dropped before any accept(). */
export function listenOverflows(): number {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    const head = lines.find((l) => l.startsWith('TcpExt:'))?.split(' ') ?? [];
    const values = lines.filter((l) => l.startsWith('TcpExt:'))[1]?.split(' ') ?? [];
    return Number(values[head.indexOf('ListenOverflows')] ?? 0);
  } catch {
    return 0;
  }
}

/** RSS of a process and its children (an edge primary and its workers). */
export function treeRss(pid: number): number {
  return [pid, ...childPids(pid)].reduce((a, p) => {
    try {
      return a + rssBytes(p);
    } catch {
      return a;
    }
  }, 0);
}

export function treeFds(pid: number): number {
  return [pid, ...childPids(pid)].reduce((a, p) => {
    try {
      return a + fdCount(p);
    } catch {
      return a;
    }
  }, 0);
}

export const mb = (bytes: number): string => `${(bytes / MB).toFixed(1)} MB`;

/** Samples `read()` every `everyMs` until stopped; keeps the peak. */
export function sampler(read: () => number, everyMs = 250): { peak(): number; stop(): number } {
  let peak = read();
  const t = setInterval(() => (peak = Math.max(peak, read())), everyMs);
  return {
    peak: () => peak,
    stop: () => {
      clearInterval(t);
      peak = Math.max(peak, read());
      return peak;
    },
  };
}

/** Prints a figure and, with SOAK_REPORT=FILE, appends it as one JSON line. */
export function report(scenario: string, figures: Record<string, unknown>): void {
  console.log(`[soak] ${scenario}: ${JSON.stringify(figures)}`);
  const file = process.env['SOAK_REPORT'];
  if (file) appendFileSync(file, `${JSON.stringify({ scenario, at: new Date().toISOString(), scale: process.env['SOAK_SCALE'] ?? '1', ...figures })}\n`);
}

/** The echoing upstream (hold-upstream.mjs) in a child process, with its own descriptor budget. */
export async function startHoldUpstream(): Promise<{ port: number; child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [join(__dirname, 'hold-upstream.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /\{"port":(\d+)\}/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`hold-upstream exited ${code}`)));
  });
  return {
    port,
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
