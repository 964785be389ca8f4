// Soak: 100,000 sequential short flows through an edge process (every close order: relayed with
// the upstream or the client closing first or resetting, denied, not TLS, truncated, through
// CONNECT and SOCKS5 tunnels). Afterwards no socket of the edge's ports is left in CLOSE_WAIT or
// FIN_WAIT_2 and the edge has no more descriptors than before; RSS is sampled along the way.
//
// SOAK_SEQ_CONCURRENCY (default 1) runs that many sequential streams side by side. Clients bind
// to 127.0.0.2-127.0.0.9 in turn, so the TIME_WAIT entries a run of this size leaves behind are
// spread over more 4-tuples.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedis, waitFor } from '@portcullis/testing';
import type { TestRedis } from '@portcullis/testing';
import { readAudit } from '../support/audit-log';
import { captureHello } from '../support/hello';
import { fdCount, MB, rssBytes, scriptedUpstream, shortFlowHellos, shortFlows, sleep, socketStates, stuck } from './support/hostile';
import { startProcStack } from './support/proc-stack';
import type { ProcStack } from './support/proc-stack';
import { envNumber, mb, report, scaled } from './support/soak';

const PROFILE = `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: soak-short
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: short
    action: allow
    fqdns: [".short.test"]
    allowPrivate: ["127.0.0.0/8"]
`;

describe('soak: sequential short flows', () => {
  let redis: TestRedis;
  let raw: Awaited<ReturnType<typeof scriptedUpstream>>;
  let stack: ProcStack;
  let edge: ProcStack['edges'][number];
  let ports: { sni: number; connect: number; socks: number; upstream: number };

  beforeAll(async () => {
    redis = await startRedis();
    raw = await scriptedUpstream();
    const [connect, socks] = [await freePort(), await freePort()];
    stack = await startProcStack({
      redis,
      profile: PROFILE,
      resolve: Object.fromEntries(['srv-end', 'cli-end', 'srv-reset', 'mute'].map((n) => [`${n}.short.test`, ['127.0.0.1']])),
      edges: [
        {
          nodeId: 'edge-seq',
          upstreamPort: raw.port,
          edge: { sniffTimeoutMs: 2_000, maxConnectionsPerSource: 1_000_000 },
          extraListeners: [
            { name: 'connect', mode: 'http-connect', listen: `127.0.0.1:${connect}` },
            { name: 'socks', mode: 'socks5', listen: `127.0.0.1:${socks}` },
          ],
        },
      ],
    });
    edge = stack.edges[0] as ProcStack['edges'][number];
    ports = { sni: edge.port, connect, socks, upstream: raw.port };
  });
  afterAll(async () => {
    await stack?.stop();
    for (const s of raw?.sockets ?? []) s.destroy();
    raw?.server.close();
    await redis?.stop();
  });

  const N = scaled(100_000);
  const concurrency = envNumber('SOAK_SEQ_CONCURRENCY', 1);

  it(`${N} sequential short flows (${concurrency} at a time), every close order: no CLOSE_WAIT or FIN_WAIT_2, no fd growth`, async () => {
    let next = 0;
    const flows = shortFlows(ports, await shortFlowHellos(captureHello), () => `127.0.0.${2 + (next++ % 8)}`);
    const slow: string[] = [];
    const errors = new Map<string, number>();
    const runOne = async (i: number): Promise<void> => {
      const p = flows[i % flows.length] as (typeof flows)[number];
      const r = await p.run().closed;
      if (r.afterMs > 5_000) slow.push(`${p.name}: ${r.afterMs} ms`);
      if (r.error && !['ECONNRESET', 'EPIPE'].includes(r.error)) errors.set(`${p.name}: ${r.error}`, (errors.get(`${p.name}: ${r.error}`) ?? 0) + 1);
    };
    for (let i = 0; i < 200; i++) await runOne(i); // warm-up
    await waitFor(async () => ((await socketStates([edge.port])).states['ESTAB'] ?? 0) === 0, 10_000, 200);
    await sleep(3_000); // the edge's 2 s linger after a refusal
    const fdsBefore = fdCount(edge.pid);
    const rssBefore = rssBytes(edge.pid);
    const samples: { flows: number; rss: string; fds: number; ms: number }[] = [];
    const t0 = Date.now();
    let done = 0;
    const every = Math.max(1, Math.floor(N / 10));
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (;;) {
          const i = done++;
          if (i >= N) return;
          await runOne(i);
          if ((i + 1) % every === 0) samples.push({ flows: i + 1, rss: mb(rssBytes(edge.pid)), fds: fdCount(edge.pid), ms: Date.now() - t0 });
        }
      }),
    );
    const ms = Date.now() - t0;
    await waitFor(async () => ((await socketStates([edge.port, ports.connect, ports.socks, raw.port])).states['ESTAB'] ?? 0) === 0, 30_000, 500);
    await sleep(3_000);
    const sockets = await socketStates([edge.port, ports.connect, ports.socks, raw.port]);
    const fdsAfter = fdCount(edge.pid);
    const rssAfter = rssBytes(edge.pid);
    const total = N + 200;
    await waitFor(() => readAudit(stack.auditLog).length >= 2 * total, 300_000, 2_000).catch(() => undefined);
    const lines = readAudit(stack.auditLog);
    const ids = new Set(lines.map((l) => `${l.flowId}|${l.event}`));
    const starts = lines.filter((l) => l.event === 'flow.start');
    const reasons: Record<string, number> = {};
    for (const l of starts) reasons[`${l.verdict}:${l.reason}`] = (reasons[`${l.verdict}:${l.reason}`] ?? 0) + 1;
    report('sequential short flows', {
      flows: N,
      concurrency,
      ms,
      perSecond: Math.round((N / ms) * 1000),
      fds: { before: fdsBefore, after: fdsAfter },
      rss: { before: mb(rssBefore), after: mb(rssAfter), growth: mb(rssAfter - rssBefore) },
      samples,
      socketsAfter: sockets.states,
      auditLines: lines.length,
      reasons,
      slow: slow.slice(0, 10),
      clientErrors: Object.fromEntries(errors),
    });

    expect(slow).toEqual([]);
    expect(stuck(sockets), sockets.lines.slice(0, 20).join('\n')).toBe(0);
    expect(fdsAfter).toBeLessThanOrEqual(fdsBefore + 5);
    expect(rssAfter - rssBefore).toBeLessThan(64 * MB);
    expect(lines.length).toBe(2 * total);
    expect(ids.size).toBe(lines.length);
    expect(starts).toHaveLength(total);
    expect(raw.sockets.size).toBe(0);
  });
});
