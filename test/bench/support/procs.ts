// Child processes for benchmarks: every one is started in its own process group, registered, and
// killed (the whole group: nginx master and workers) when the scenario ends, when the bench fails,
// or when the bench process itself is interrupted. Plus /proc readers for CPU time, RSS and fds.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';

export interface Managed {
  name: string;
  pid: number;
  child: ChildProcess;
  logFile: string;
  /** resolves with the exit code (or null when killed by a signal) */
  exited: Promise<number | null>;
  /** the tail of the log file, for error messages */
  tail(chars?: number): string;
  /** SIGTERM to the group, SIGKILL after graceMs; always ends with a SIGKILL sweep of the group. */
  stop(graceMs?: number): Promise<number | null>;
}

const live = new Set<Managed>();
let hooked = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

/** Process groups of children started with spawnPiped (load generators). */
const extra = new Set<number>();

/** Temp dirs to remove if the bench dies (a scenario removes its own when it ends normally). */
const tempDirs = new Set<string>();

export function registerTempDir(dir: string): void {
  hookCleanup();
  tempDirs.add(dir);
}

export function removeTempDir(dir: string, keep = false): void {
  tempDirs.delete(dir);
  if (!keep) rmSync(dir, { recursive: true, force: true });
}

/** Synchronous last-resort cleanup: SIGKILL every group still registered, remove temp dirs. */
export function killAllSync(): void {
  for (const m of live) killGroup(m.pid, 'SIGKILL');
  for (const pid of extra) killGroup(pid, 'SIGKILL');
  live.clear();
  extra.clear();
  if (process.env['BENCH_KEEP'] !== '1') for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/**
 * A child with piped stdin/stdout (a load generator), in its own process group, killed with the
 * rest if the bench dies; the group is swept when it exits.
 */
export function spawnPiped(cmd: string, args: string[], opts: { noFile?: number; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  hookCleanup();
  const [file, argv] = opts.noFile ? ['bash', ['-c', `ulimit -n ${opts.noFile} && exec "$0" "$@"`, cmd, ...args]] : [cmd, args];
  const child = spawn(file as string, argv as string[], { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: { ...process.env, ...opts.env } });
  const pid = child.pid;
  if (pid !== undefined) {
    extra.add(pid);
    child.once('exit', () => {
      killGroup(pid, 'SIGKILL');
      extra.delete(pid);
    });
  }
  return child;
}

function hookCleanup(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      console.error(`bench: ${sig}: stopping ${live.size} child process group(s)`);
      killAllSync();
      process.exit(130);
    });
  }
}

/** Stops every registered child (gracefully, in parallel). */
export async function stopAll(graceMs = 3_000): Promise<void> {
  await Promise.all([...live].map((m) => m.stop(graceMs)));
}

export interface LaunchOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr go here (appended); read it for readiness and errors */
  logFile: string;
  /** raise the soft open-files limit for this child (through bash `ulimit -n`) */
  noFile?: number;
}

export function launch(name: string, cmd: string, args: string[], opts: LaunchOptions): Managed {
  hookCleanup();
  const fd = openSync(opts.logFile, 'a');
  const [file, argv] = opts.noFile ? ['bash', ['-c', `ulimit -n ${opts.noFile} && exec "$0" "$@"`, cmd, ...args]] : [cmd, args];
  const child = spawn(file as string, argv as string[], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`);
  const pid = child.pid;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(-1));
  });
  const m: Managed = {
    name,
    pid,
    child,
    logFile: opts.logFile,
    exited,
    tail: (chars = 2_000) => {
      try {
        const t = readFileSync(opts.logFile, 'utf8');
        return t.slice(-chars);
      } catch {
        return '';
      }
    },
    stop: async (graceMs = 5_000) => {
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(pid, 'SIGTERM');
        const t = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(t);
      }
      killGroup(pid, 'SIGKILL');
      live.delete(m);
      return child.exitCode;
    },
  };
  live.add(m);
  void exited.then(() => {
    // the leader is gone; leftover group members (nginx workers) are swept by stop()
  });
  return m;
}

/** Waits until `text` appears in the process's log, failing early if it exits. */
export async function waitForLog(m: Managed, text: string | RegExp, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const log = existsSync(m.logFile) ? readFileSync(m.logFile, 'utf8') : '';
    if (typeof text === 'string' ? log.includes(text) : text.test(log)) return;
    if (m.child.exitCode !== null || m.child.signalCode !== null) throw new Error(`${m.name} exited (${m.child.exitCode ?? m.child.signalCode}) before "${String(text)}":\n${m.tail()}`);
    if (Date.now() > until) throw new Error(`${m.name} did not log "${String(text)}" within ${timeoutMs} ms:\n${m.tail()}`);
    await sleep(50);
  }
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

export async function waitForPort(m: Managed, port: number, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await portOpen(port))) {
    if (m.child.exitCode !== null || m.child.signalCode !== null) throw new Error(`${m.name} exited (${m.child.exitCode ?? m.child.signalCode}) before listening on ${port}:\n${m.tail()}`);
    if (Date.now() > until) throw new Error(`${m.name} is not listening on ${port} after ${timeoutMs} ms:\n${m.tail()}`);
    await sleep(50);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- /proc readers ----

let clkTck = 0;
function ticksPerSecond(): number {
  if (!clkTck) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** Fields of /proc/PID/stat after the command name (field 3 = index 0). */
function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Every live process whose process group is `pgid` (an nginx master and its workers). */
export function groupPids(pgid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const f = statFields(Number(d));
    if (f && Number(f[2]) === pgid) out.push(Number(d));
  }
  return out;
}

/** utime+stime of the processes (all their threads), in milliseconds. */
export function cpuMs(pids: number[]): number {
  const { user, sys } = cpuSplitMs(pids);
  return user + sys;
}

/** utime and stime of the processes (all their threads), in milliseconds, kept apart. */
export function cpuSplitMs(pids: number[]): { user: number; sys: number } {
  let u = 0;
  let k = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    if (f) {
      u += Number(f[11]); // field 14: utime
      k += Number(f[12]); // field 15: stime
    }
  }
  return { user: (u * 1000) / ticksPerSecond(), sys: (k * 1000) / ticksPerSecond() };
}

/** Context switches (voluntary: the thread slept; involuntary: it was preempted) summed over every thread of the processes. */
export function contextSwitches(pids: number[]): { voluntary: number; involuntary: number } {
  let v = 0;
  let n = 0;
  for (const pid of pids) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const t of tids) {
      try {
        const st = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
        v += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(st)?.[1] ?? 0);
        n += Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(st)?.[1] ?? 0);
      } catch {
        // thread gone
      }
    }
  }
  return { voluntary: v, involuntary: n };
}

/** Resident set size (VmRSS) summed over the processes, in KiB. */
export function rssKiB(pids: number[]): number {
  let kib = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      kib += Number(m?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return kib;
}

export function fdCount(pids: number[]): number {
  let n = 0;
  for (const pid of pids) {
    try {
      n += readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      // gone
    }
  }
  return n;
}

/** The soft and hard open-files limits this process (and its children) start with. */
export function noFileLimits(): { soft: number; hard: number } {
  const read = (flag: string): number => {
    try {
      const v = execFileSync('bash', ['-c', `ulimit ${flag}`], { encoding: 'utf8' }).trim();
      return v === 'unlimited' ? 1 << 30 : Number(v);
    } catch {
      return 1024;
    }
  };
  return { soft: read('-Sn'), hard: read('-Hn') };
}
