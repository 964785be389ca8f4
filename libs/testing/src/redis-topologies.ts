// Redis Cluster and Sentinel for tests, on free loopback ports, torn down afterwards.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './ports';
import { startRedis } from './redis-server';
import type { TestRedis } from './redis-server';

function cli(port: number, ...args: string[]): string {
  return execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' });
}

/** A three-master Redis Cluster (no replicas). */
export async function startRedisCluster(masters = 3): Promise<{ nodes: string[]; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-cluster-'));
  const ports: number[] = [];
  const children: ChildProcess[] = [];
  for (let i = 0; i < masters; i++) {
    const port = await freePort();
    ports.push(port);
    children.push(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' }));
  }
  for (const p of ports) await waitFor(() => { try { return cli(p, 'ping').trim() === 'PONG'; } catch { return false; } }, 10_000, 50);
  execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' });
  for (const p of ports) await waitFor(() => cli(p, 'cluster', 'info').includes('cluster_state:ok'), 15_000, 100);
  return {
    nodes: ports.map((p) => `127.0.0.1:${p}`),
    stop: async () => {
      for (const c of children) c.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A master watched by one Sentinel (quorum 1). */
export async function startRedisSentinel(name = 'portcullis'): Promise<{ master: TestRedis; sentinels: string[]; name: string; stop(): Promise<void> }> {
  const master = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-sentinel-'));
  const port = await freePort();
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(conf, `port ${port}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor ${name} 127.0.0.1 ${master.port} 1\nsentinel down-after-milliseconds ${name} 1000\n`);
  const child = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  await waitFor(() => { try { return cli(port, 'sentinel', 'get-master-addr-by-name', name).includes(String(master.port)); } catch { return false; } }, 10_000, 100);
  return {
    master,
    sentinels: [`127.0.0.1:${port}`],
    name,
    stop: async () => {
      child.kill('SIGKILL');
      await master.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
