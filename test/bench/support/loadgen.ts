// Parent-side handles on the tls-load.ts child process.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { spawnPiped } from './procs';
import { SNI } from './rig';

const SCRIPT = join(__dirname, 'tls-load.ts');

export interface RateResult {
  sent: number;
  completed: number;
  errors: number;
  seconds: number;
  achievedRate: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
  coP50Us: number;
  coP99Us: number;
  coP999Us: number;
}

function start(args: Record<string, unknown>, noFile?: number): { child: ChildProcess; lines: AsyncIterable<string>; stderr: () => string } {
  const child = spawnPiped(process.execPath, ['--import', 'tsx', SCRIPT, JSON.stringify({ servername: SNI, ...args })], noFile ? { noFile } : {});
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  let partial = '';
  child.stdout?.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    queue.push(...parts);
    wake?.();
  });
  child.once('exit', () => {
    ended = true;
    wake?.();
  });
  const lines: AsyncIterable<string> = {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const l = queue.shift();
        if (l !== undefined) {
          yield l;
          continue;
        }
        if (ended) return;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    },
  };
  return { child, lines, stderr: () => err };
}

async function expectLine(lines: AsyncIterable<string>, prefix: string, what: () => string): Promise<string> {
  for await (const l of lines) if (l.startsWith(prefix)) return l.slice(prefix.length);
  throw new Error(`load generator ended without ${prefix.trim()}: ${what()}`);
}

/** Fixed-rate latency run against one candidate port. */
export async function runRate(o: { port: number; path: string; rate: number; seconds: number; connections: number }): Promise<RateResult> {
  const g = start({ mode: 'rate', ...o });
  const timer = setTimeout(() => g.child.kill('SIGKILL'), (o.seconds + 60) * 1000);
  try {
    return JSON.parse(await expectLine(g.lines, 'RESULT ', g.stderr)) as RateResult;
  } finally {
    clearTimeout(timer);
  }
}

export interface IdleFlows {
  opened: number;
  alive: number;
  failed: number;
  ms: number;
  /** closes every flow; resolves how many were still alive just before */
  close(): Promise<number>;
}

/** Opens `flows` idle TLS flows through a port and holds them until close(). */
export async function openIdleFlows(o: { port: number; path: string; flows: number; concurrency: number; noFile?: number }): Promise<IdleFlows> {
  const g = start({ mode: 'idle', port: o.port, path: o.path, flows: o.flows, concurrency: o.concurrency }, o.noFile);
  const timer = setTimeout(() => g.child.kill('SIGKILL'), 600_000);
  let ready: { opened: number; alive: number; failed: number; ms: number };
  try {
    ready = JSON.parse(await expectLine(g.lines, 'READY ', g.stderr)) as typeof ready;
  } catch (err) {
    clearTimeout(timer);
    g.child.kill('SIGKILL');
    throw err;
  }
  return {
    ...ready,
    close: async () => {
      g.child.stdin?.end();
      try {
        const closed = JSON.parse(await expectLine(g.lines, 'CLOSED ', g.stderr)) as { stillAlive: number };
        return closed.stillAlive;
      } finally {
        clearTimeout(timer);
        g.child.kill('SIGKILL');
      }
    },
  };
}
