// The audit pipeline under failure: a consumer killed mid-burst, Redis restarted under load, and
// the operator commands (tail, top, discover) on what was recorded.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFlowEvent, FLOW_STREAM } from '@portcullis/flow-events';
import type { FlowEvent } from '@portcullis/flow-events';
import { freePort, makeCerts, startRedis, startTlsUpstream, waitFor } from '@portcullis/testing';
import type { TestRedis } from '@portcullis/testing';
import { cli } from '../support/cli';
import { readAudit } from '../support/audit-log';
import { startApp, waitForOutput, writeConfig } from '../support/processes';
import type { Proc } from '../support/processes';
import { nodeTls } from '../support/tls-client';

const event = (i: number, sni = `n${i % 50}.burst.test`): FlowEvent => ({
  v: 1,
  event: i % 2 ? 'flow.end' : 'flow.start',
  flowId: `burst-${Math.floor(i / 2)}`,
  nodeId: 'edge-b',
  listener: 'tls',
  mode: 'sni',
  src: `10.0.0.${i % 7}:1000`,
  dst: `${sni}:443`,
  sni,
  connectHost: '',
  protocol: 'tls',
  verdict: i % 4 === 0 ? 'deny' : 'allow',
  ruleId: i % 4 === 0 ? '' : 'burst',
  reason: i % 4 === 0 ? 'default' : 'rule',
  policyVersion: 1,
  startTime: new Date().toISOString(),
  ...(i % 2 ? { bytesUp: 1, bytesDown: 2, durationMs: 3, closeReason: 'closed', traceId: '' } : {}),
}) as FlowEvent;


describe('audit pipeline', () => {
  const procs: Proc[] = [];
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0).reverse()) await p.stop();
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('kill -9 of one audit instance mid-burst: with a second one running, all 20,000 events land exactly once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-burst-'));
    const redis = await startRedis();
    cleanup.push(() => redis.stop(), () => rmSync(dir, { recursive: true, force: true }));
    const log = join(dir, 'audit.log');
    const config = (name: string) => writeConfig(dir, `${name}.yaml`, { redis: { url: redis.url }, audit: { log, consumer: name, claimIdleMs: 1_000, batchSize: 200 } });
    const a = startApp('audit-service', ['--config', config('audit-a')]);
    const b = startApp('audit-service', ['--config', config('audit-b')]);
    procs.push(a, b);
    await waitForOutput(a, 'audit-service consuming');
    await waitForOutput(b, 'audit-service consuming');
    const client = new Redis(redis.url);
    cleanup.push(() => client.disconnect());
    const N = 20_000;
    for (let off = 0; off < N; off += 1_000) {
      const p = client.pipeline();
      for (let i = off; i < off + 1_000; i++) p.xadd(FLOW_STREAM, '*', 'data', encodeFlowEvent(event(i)));
      await p.exec();
      if (off === 6_000) await a.kill(); // SIGKILL: its delivered-but-unacked entries stay pending
    }
    await waitFor(() => readAudit(log).length >= N, 30_000, 200);
    await new Promise((r) => setTimeout(r, 1_500)); // anything late would be a duplicate
    const lines = readAudit(log);
    const keys = lines.map((l) => `${l.flowId}|${l.event}`);
    expect(lines.length).toBe(N);
    expect(new Set(keys).size).toBe(N);
    expect(Number((await client.xpending(FLOW_STREAM, 'audit'))[0])).toBe(0);
  });

  it('Redis restarted (AOF on) while flows run: every flow still gets its start and end in the log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-aof-'));
    const redis: TestRedis = await startRedis({ appendonly: true });
    const certs = makeCerts(['aof.test']);
    const upstream = await startTlsUpstream(certs);
    cleanup.push(() => redis.stop(), () => upstream.close(), () => rmSync(dir, { recursive: true, force: true }));
    const [edgePort, policyPort] = [await freePort(), await freePort()];
    writeFileSync(join(dir, 'p.yaml'), 'apiVersion: portcullis/v1\nkind: FqdnFilterProfile\nname: aof\ndefaultAction: deny\nnoSni: deny\nech: deny\nrules:\n  - id: aof\n    action: allow\n    fqdns: ["aof.test"]\n    allowPrivate: ["127.0.0.0/8"]\n');
    const log = join(dir, 'audit.log');
    const config = writeConfig(dir, 'c.yaml', {
      redis: { url: redis.url },
      policy: { listen: `127.0.0.1:${policyPort}`, profile: join(dir, 'p.yaml'), adminToken: 'aof-token-1' },
      edge: { policyService: `127.0.0.1:${policyPort}`, listeners: [{ name: 'tls', mode: 'sni', listen: `127.0.0.1:${edgePort}`, upstreamPort: upstream.port }], resolve: { 'aof.test': ['127.0.0.1'] }, spoolDir: join(dir, 'spool') },
      audit: { log },
    });
    const policy = startApp('policy-service', ['--config', config]);
    procs.push(policy);
    await waitForOutput(policy, 'policy-service listening');
    const audit = startApp('audit-service', ['--config', config]);
    const edge = startApp('edge-proxy', ['--config', config]);
    procs.push(audit, edge);
    await waitForOutput(edge, 'edge listening');
    await waitForOutput(audit, 'audit-service consuming');

    let ok = 0;
    let running = true;
    const load = (async () => {
      while (running) if ((await nodeTls(edgePort, 'aof.test', certs.ca)).body) ok++;
    })();
    await new Promise((r) => setTimeout(r, 1_000));
    await redis.kill();
    await new Promise((r) => setTimeout(r, 2_000));
    await redis.restart();
    await new Promise((r) => setTimeout(r, 1_000));
    running = false;
    await load;
    expect(ok).toBeGreaterThan(10);
    await waitFor(() => readAudit(log).filter((l) => l.event === 'flow.end').length >= ok, 30_000, 200);
    const lines = readAudit(log);
    const starts = new Set(lines.filter((l) => l.event === 'flow.start').map((l) => l.flowId));
    const ends = new Set(lines.filter((l) => l.event === 'flow.end').map((l) => l.flowId));
    expect(starts.size).toBe(ok);
    expect([...starts].every((f) => ends.has(f))).toBe(true);
    expect(lines.length).toBe(2 * ok); // and nothing twice
  });

  it('audit tail, top and discover on a recorded pipeline', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-ops-'));
    const redis = await startRedis();
    cleanup.push(() => redis.stop(), () => rmSync(dir, { recursive: true, force: true }));
    const log = join(dir, 'audit.log');
    const config = writeConfig(dir, 'c.yaml', { redis: { url: redis.url }, audit: { log } });
    const audit = startApp('audit-service', ['--config', config]);
    procs.push(audit);
    await waitForOutput(audit, 'audit-service consuming');
    const tail = cli(['audit', 'tail', '--verdict', 'deny', '--sni', '*.burst.test', '--count', '3', '--config', config]);
    await new Promise((r) => setTimeout(r, 1_000));
    const client = new Redis(redis.url);
    cleanup.push(() => client.disconnect());
    const p = client.pipeline();
    for (let i = 0; i < 400; i++) p.xadd(FLOW_STREAM, '*', 'data', encodeFlowEvent(event(i)));
    await p.exec();
    const t = await tail;
    expect(t.code).toBe(0);
    const tailLines = t.out.trim().split('\n');
    expect(tailLines).toHaveLength(3);
    for (const l of tailLines) expect(l).toMatch(/flow\.start +deny +n\d+\.burst\.test reason=default/);

    await waitFor(() => readAudit(log).length === 400, 10_000);
    const top = await cli(['audit', 'top', '--window', '5m', '--config', config]);
    expect(top.code).toBe(0);
    expect(top.out).toMatch(/top name/);
    expect(top.out).toMatch(/\s+8\s+4\s+n0\.burst\.test/); // n0 starts at i = 0, 50 … 350; those at multiples of 100 are denials
    expect(top.out).toMatch(/top source/);

    const d = await cli(['audit', 'discover', '--since', '1h', '--config', config]);
    expect(d.code).toBe(0);
    expect(d.out).toContain('"*.burst.test"'.replace(/"/g, ''));
    writeFileSync(join(dir, 'discovered.yaml'), d.out);
    const v = await cli(['policy', 'validate', join(dir, 'discovered.yaml')]);
    expect(v.code).toBe(0);
  });
});
