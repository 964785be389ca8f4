// Microbenchmark (not a scenario, not a test): RedisFlowTransport.add() of 16-event batches, the
// one-script-per-batch append against the pipeline of one XADD per event it replaced, on a private
// redis-server. Reports client CPU and wall time per event and redis-server CPU per event, as
// same-round ratios (rounds interleaved, odd rounds reversed). Run after nothing else:
//   TSX_TSCONFIG_PATH=tsconfig.base.json node --import tsx test/bench/support/flow-append.ts [rounds] [batches]
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import type * as FlowEvents from '../../../libs/flow-events/src/index';
import type * as Testing from '../../../libs/testing/src/index';
import { installAliases } from './aliases';

const BATCH = 16;
const MAX_LEN = 100_000;
const ROUNDS = Number(process.argv[2] ?? 7);
const BATCHES = Number(process.argv[3] ?? 4_000);

type Add = (data: string[]) => Promise<void>;

/** The append before the script: what RedisFlowTransport.add() did until now. */
function pipelineAdd(redis: Redis, stream: string): Add {
  return async (data) => {
    const p = redis.pipeline();
    for (const d of data) p.xadd(stream, 'MAXLEN', '~', MAX_LEN, '*', 'data', d);
    const res = await p.exec();
    const failed = res?.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
  };
}

/** Realistic events: a flow.start and a flow.end per flow, ~400 bytes each. */
function events(fe: typeof FlowEvents, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const base = { v: 1 as const, flowId: `0b6c1d2e-3f40-4a5b-8c6d-${String(i).padStart(12, '0')}`, nodeId: 'edge-a', listener: 'tls', mode: 'sni', src: `10.1.2.3:${40_000 + (i % 20_000)}`, dst: '93.184.216.34:443', sni: 'api.example.com', connectHost: '', protocol: 'tls' as const, verdict: 'allow' as const, ruleId: 'example', reason: 'rule', policyVersion: 7, startTime: new Date().toISOString() };
    const e: FlowEvents.FlowEvent = i % 2 ? { ...base, event: 'flow.end', bytesUp: 1234, bytesDown: 56789, durationMs: 12.5, closeReason: 'client-closed', traceId: '' } : { ...base, event: 'flow.start' };
    out.push(fe.encodeFlowEvent(e));
  }
  return out;
}

async function redisCpuMs(stats: Redis): Promise<number> {
  const info = await stats.info('cpu');
  const num = (k: string): number => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return (num('used_cpu_user') + num('used_cpu_sys')) * 1_000;
}

interface Sample {
  clientCpuUs: number;
  wallUs: number;
  redisCpuUs: number;
}

async function measure(add: Add, batches: string[][], stats: Redis): Promise<Sample> {
  const n = batches.length * BATCH;
  const r0 = await redisCpuMs(stats);
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (const b of batches) await add(b);
  const wallUs = Number(process.hrtime.bigint() - t0) / 1_000;
  const c = process.cpuUsage(c0);
  const r1 = await redisCpuMs(stats);
  return { clientCpuUs: (c.user + c.system) / n, wallUs: wallUs / n, redisCpuUs: ((r1 - r0) * 1_000) / n };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const f = (x: number): string => x.toFixed(2);

async function main(): Promise<void> {
  installAliases();
  const fe = (await import('../../../libs/flow-events/src/index')) as typeof FlowEvents;
  const testing = (await import('../../../libs/testing/src/index')) as typeof Testing;
  const server = await testing.startRedis();
  const client = new Redis(server.url);
  const stats = new Redis(server.url);
  try {
    const all = events(fe, BATCHES * BATCH);
    const batches = Array.from({ length: BATCHES }, (_, i) => all.slice(i * BATCH, (i + 1) * BATCH));
    const transport = new fe.RedisFlowTransport(client, { maxLen: MAX_LEN, stream: 'bench:flows:script' });
    const candidates: [string, Add][] = [
      ['pipeline', pipelineAdd(client, 'bench:flows:pipeline')],
      ['script', (d) => transport.add(d)],
    ];
    for (const [, add] of candidates) await measure(add, batches.slice(0, 500), stats); // warm-up (JIT, script load)
    const res = new Map<string, Sample[]>(candidates.map(([name]) => [name, []]));
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 ? [...candidates].reverse() : candidates;
      for (const [name, add] of order) res.get(name)?.push(await measure(add, batches, stats));
    }
    const p = res.get('pipeline') ?? [];
    const s = res.get('script') ?? [];
    const ratios = (k: keyof Sample): number[] => s.map((x, i) => x[k] / (p[i]?.[k] ?? NaN));
    console.log(`add() of ${BATCH}-event batches, ${BATCHES} batches (${BATCHES * BATCH} events) per candidate per round, ${ROUNDS} rounds interleaved, one batch in flight; node ${process.version}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    console.log('| per event | pipeline (median) | script (median) | script / pipeline, median of same-round ratios (min–max) |');
    console.log('|---|---|---|---|');
    for (const [k, label] of [['clientCpuUs', 'client CPU µs'], ['wallUs', 'wall µs'], ['redisCpuUs', 'redis-server CPU µs']] as [keyof Sample, string][]) {
      const q = ratios(k);
      console.log(`| ${label} | ${f(median(p.map((x) => x[k])))} | ${f(median(s.map((x) => x[k])))} | ${f(median(q))} (${f(Math.min(...q))}–${f(Math.max(...q))}) |`);
    }
  } finally {
    client.disconnect();
    stats.disconnect();
    await server.stop();
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
