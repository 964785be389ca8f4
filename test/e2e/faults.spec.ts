// Failing parts, injected under load into Portcullis running as processes on a real Redis. Each
// case ends with "nothing lost", checked against the audit log: every connection a client made
// has exactly one flow.start and one flow.end, and nothing is written twice.
//   - Redis down longer than the edge's event queue holds: events spill to the spool, replayed after
//   - Redis stalled with SIGSTOP (not closed): decisions go on within the 20 ms cache budget
//   - the policy service killed: failMode closed refuses (policy-unavailable), open allows; recovery
//   - the only audit consumer killed with entries pending, restarted under its name
//   - an edge worker killed (edge.workers: 2): the other serves, the primary forks a new one
//   - an edge worker killed while connections arrive: no client hangs, nothing left in the primary
//   - edge.workers: 2 with metrics: one scrape counts every worker, a stuck worker cannot hang it
//   - an edge with few file descriptors: clamped at start, a flood is shed and counted, it recovers
// (Redis restarted with AOF under load, and an audit consumer killed beside a second one, are in
// audit-pipeline.spec.ts; an edge process and a policy replica killed in a fleet, in fleet.spec.ts.)
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { encodeFlowEvent, FLOW_STREAM } from '@portcullis/flow-events';
import type { FlowEvent } from '@portcullis/flow-events';
import { makeCerts, startRedis, startTlsUpstream, waitFor } from '@portcullis/testing';
import type { TestCerts, TlsUpstream } from '@portcullis/testing';
import { readAudit } from '../support/audit-log';
import { healthStatus } from '../support/grpc';
import { childPids, percentile, sleep, socketStates } from '../soak/support/hostile';
import { checkAudit, load, metric, readyz, scrape, settleAudit, startProcStack, tlsFlow } from '../soak/support/proc-stack';
import type { ClientFlow, ProcStack } from '../soak/support/proc-stack';

const PROFILE = `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: faults
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: ok
    action: allow
    fqdns: ["ok.test"]
    allowPrivate: ["127.0.0.0/8"] # the test upstream lives on loopback
`;
const OK = 'ok.test';
const DENIED = 'denied.test';
const BODY = `hello from upstream ${OK}\n`;
const resolve = { [OK]: ['127.0.0.1'], [DENIED]: ['127.0.0.1'] };

const summary = (flows: ClientFlow[]): string => {
  const by = new Map<string, number>();
  for (const f of flows) by.set(f.ok ? 'ok' : (f.errorCode ?? 'failed'), (by.get(f.ok ? 'ok' : (f.errorCode ?? 'failed')) ?? 0) + 1);
  return JSON.stringify(Object.fromEntries(by));
};


/**
 * The flow.start an edge wrote for a client flow: same edge and client address and port, and of
 * those (ports come round again within a test) the one whose startTime is nearest the client's start.
 */
function startIn(lines: Record<string, unknown>[], f: { nodeId: string; src: string; startedAt: number }): Record<string, unknown> | undefined {
  let best: Record<string, unknown> | undefined;
  let bestGap = Infinity;
  for (const l of lines) {
    if (l['event'] !== 'flow.start' || l['nodeId'] !== f.nodeId || l['src'] !== f.src) continue;
    const gap = Math.abs(Date.parse(String(l['startTime'])) - f.startedAt);
    if (gap < bestGap) {
      bestGap = gap;
      best = l;
    }
  }
  return best;
}
describe('faults under load, nothing lost', () => {
  let certs: TestCerts;
  let upstream: TlsUpstream;
  const cleanup: (() => Promise<unknown> | unknown)[] = [];

  beforeAll(async () => {
    certs = makeCerts([OK, DENIED]);
    upstream = await startTlsUpstream(certs);
  });
  afterAll(async () => upstream?.close());
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('Redis down longer than the event queue holds: the edge spills to its spool, keeps serving, replays everything after', async () => {
    const redis = await startRedis({ appendonly: true });
    cleanup.push(() => redis.stop());
    const stack = await startProcStack({ redis, profile: PROFILE, resolve, edges: [{ nodeId: 'edge-a', upstreamPort: upstream.port, metrics: true, edge: { eventQueueSize: 100 } }] });
    cleanup.push(() => stack.stop());
    const [edge] = stack.edges as [ProcStack['edges'][number]];
    const traffic = load(4, (i) => ({ nodeId: 'edge-a', port: edge.port, sni: i % 5 === 4 ? DENIED : OK }), certs.ca);
    await sleep(1_000);
    await redis.kill();
    const downAt = Date.now();
    // the queue (100 events) fills within the outage and the rest goes to disk
    await waitFor(async () => metric(await scrape(edge.metricsPort as number), 'portcullis_spool_bytes') > 0, 10_000, 100);
    await sleep(1_500);
    const during = await scrape(edge.metricsPort as number);
    const policyHealth = await healthStatus(stack.policyAddress).catch((e: Error) => e.message);
    const edgeReady = await readyz(edge.metricsPort as number);
    const servedWhileDown = traffic.flows.filter((f) => f.startedAt > downAt && f.ok).length;
    await redis.restart();
    const upAt = Date.now();
    await sleep(1_000);
    const flows = await traffic.stop();
    await waitFor(async () => metric(await scrape(edge.metricsPort as number), 'portcullis_spool_bytes') === 0, 15_000, 200);
    const check = await settleAudit(() => readAudit(stack.auditLog), flows);
    const spoolFiles = readdirSync(join(stack.dir, 'spool', 'edge-a', 'main'));
    console.log(
      `[faults] redis down ${upAt - downAt} ms: ${servedWhileDown} flows served meanwhile; queue ${metric(during, 'portcullis_audit_queue_depth')} events, spool ${metric(during, 'portcullis_spool_bytes')} bytes, dropped ${metric(during, 'portcullis_events_dropped_total')}; policy health ${policyHealth}, edge /readyz ${edgeReady}; ${flows.length} flows ${summary(flows)}, ${check.lines.length} audit lines (${stack.audits.flatMap((a) => a.lines('audit.duplicates dropped')).reduce((n, l) => n + Number(l['count']), 0)} repeats dropped); spool dir after: ${JSON.stringify(spoolFiles)}`,
    );

    expect(servedWhileDown).toBeGreaterThan(20);
    expect(flows.filter((f) => f.sni === OK && !f.ok)).toEqual([]);
    expect(flows.filter((f) => f.sni === DENIED).every((f) => f.errorCode === 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED')).toBe(true);
    expect(metric(during, 'portcullis_audit_queue_depth')).toBe(100);
    expect(metric(during, 'portcullis_events_dropped_total')).toBe(0);
    expect(edge.lines('flow events not yet written; retrying').length).toBeGreaterThan(0);
    expect(edgeReady).toBe(200); // the data plane does not need Redis
    expect(check.incomplete.map((f) => f.src)).toEqual([]);
    expect(check.duplicates).toBe(0);
    expect(check.unended).toEqual([]);
    expect(spoolFiles).toEqual([]); // replayed and removed
  });

  // BUG: libs/flow-events/src/spool.ts Spool.append chains writePending() onto `this.writing`
  // with no catch: when the spool's disk is full (ENOSPC), appendFile rejects, the rejection is
  // unhandled, and Node (no unhandledRejection handler anywhere) kills the edge process; every
  // later peek() awaits the same rejected promise. Even without the crash, the lines accepted by
  // append() are counted as spooled (portcullis_spool_bytes) though nothing reached the disk, so
  // they are lost without being counted in portcullis_events_dropped_total. Repro: spool file a
  // symlink to /dev/full, eventQueueSize 100, Redis down, > 100 events. Expected: the edge keeps
  // serving; what fits in neither the queue nor the spool is dropped, counted and logged once per
  // 10 s ("flow event queue full: events dropped"). Unskip once fixed.
  it('the spool disk full while Redis is down: the edge keeps serving and counts what it drops', async () => {
    const redis = await startRedis({ appendonly: true });
    cleanup.push(() => redis.stop());
    const spoolDir = mkdtempSync(join(tmpdir(), 'portcullis-full-'));
    cleanup.push(() => rmSync(spoolDir, { recursive: true, force: true }));
    mkdirSync(join(spoolDir, 'edge-f', 'main'), { recursive: true });
    symlinkSync('/dev/full', join(spoolDir, 'edge-f', 'main', 'flows.spool')); // every write: ENOSPC
    const stack = await startProcStack({ redis, profile: PROFILE, resolve, edges: [{ nodeId: 'edge-f', upstreamPort: upstream.port, metrics: true, edge: { eventQueueSize: 100, spoolDir } }] });
    cleanup.push(() => stack.stop());
    const [edge] = stack.edges as [ProcStack['edges'][number]];
    await redis.kill();
    const flows: ClientFlow[] = [];
    for (let i = 0; i < 150; i++) flows.push(await tlsFlow('edge-f', edge.port, OK, certs.ca));
    await sleep(500);
    expect(edge.alive()).toBe(true);
    expect(flows.filter((f) => !f.ok)).toEqual([]);
    const m = await scrape(edge.metricsPort as number);
    expect(metric(m, 'portcullis_events_dropped_total')).toBe(300 - 100);
    expect(metric(m, 'portcullis_spool_bytes')).toBe(0);
    expect(edge.lines('flow event queue full: events dropped').length).toBeGreaterThan(0);
    await redis.restart();
    await waitFor(() => readAudit(stack.auditLog).length >= 100, 15_000, 200);
    expect(edge.alive()).toBe(true);
  });

  it('Redis stalled with SIGSTOP: flows keep being decided (20 ms cache budget), events arrive after SIGCONT', async () => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    // verdicts live 1 ms: every flow asks the policy service, which asks Redis' verdict cache first
    const stack = await startProcStack({ redis, profile: PROFILE, resolve, policy: { verdictTtlMs: 1 }, edges: [{ nodeId: 'edge-s', upstreamPort: upstream.port, metrics: true }] });
    cleanup.push(() => stack.stop());
    const [edge] = stack.edges as [ProcStack['edges'][number]];
    const traffic = load(4, (i) => ({ nodeId: 'edge-s', port: edge.port, sni: i % 5 === 4 ? DENIED : OK }), certs.ca);
    await sleep(1_000);
    const before = traffic.flows.filter((f) => f.ok).map((f) => f.ms);
    const m0 = await scrape(edge.metricsPort as number);
    redis.pause();
    const pausedAt = Date.now();
    cleanup.push(() => redis.resume());
    await sleep(3_000);
    const m1 = await scrape(edge.metricsPort as number);
    const policyHealth = await healthStatus(stack.policyAddress).catch((e: Error) => e.message);
    redis.resume();
    const resumedAt = Date.now();
    await sleep(1_000);
    const flows = await traffic.stop();
    const stalled = flows.filter((f) => f.startedAt > pausedAt + 100 && f.at < resumedAt);
    const stalledMs = stalled.filter((f) => f.ok).map((f) => f.ms);
    const check = await settleAudit(() => readAudit(stack.auditLog), flows);
    const decidedDuring = metric(m1, 'portcullis_decide_duration_seconds', { source: 'service' }) - metric(m0, 'portcullis_decide_duration_seconds', { source: 'service' });
    console.log(
      `[faults] redis stalled ${resumedAt - pausedAt} ms: ${stalled.length} flows started and finished meanwhile ${summary(stalled)}, p50 ${percentile(stalledMs, 50).toFixed(1)} ms (before ${percentile(before, 50).toFixed(1)} ms), ${decidedDuring} decisions by the service; edge queue ${metric(m1, 'portcullis_audit_queue_depth')} events; policy health ${policyHealth}; ${flows.length} flows, ${check.lines.length} audit lines`,
    );

    expect(stalled.length).toBeGreaterThan(20);
    expect(stalled.filter((f) => f.sni === OK && !f.ok)).toEqual([]);
    expect(stalled.filter((f) => f.sni === DENIED).every((f) => f.errorCode === 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED')).toBe(true);
    expect(decidedDuring).toBeGreaterThanOrEqual(stalled.length); // decided by the service, not served from L1
    expect(percentile(stalledMs, 50)).toBeLessThan(250);
    // the events waited in the edge's queue, and were all written after SIGCONT
    expect(metric(m1, 'portcullis_audit_queue_depth')).toBeGreaterThan(0);
    expect(check.incomplete.map((f) => f.src)).toEqual([]);
    expect(check.duplicates).toBe(0);
    expect(check.unended).toEqual([]);
    expect(readAudit(stack.auditLog).filter((l) => l.event === 'flow.start' && l.sni === OK).every((l) => l.reason === 'rule')).toBe(true);
  });

  it('the policy service killed: failMode closed refuses with policy-unavailable, open allows with fail-open; both recover when it is back', async () => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const stack = await startProcStack({
      redis,
      profile: PROFILE,
      resolve,
      policy: { verdictTtlMs: 300 },
      edges: [
        { nodeId: 'edge-closed', upstreamPort: upstream.port, metrics: true },
        // fail-open knows no rule, so only the global exemption lets it reach the loopback upstream
        { nodeId: 'edge-open', upstreamPort: upstream.port, metrics: true, edge: { failMode: 'open', allowPrivate: ['127.0.0.0/8'] } },
      ],
    });
    cleanup.push(() => stack.stop());
    const [closed, open] = stack.edges as [ProcStack['edges'][number], ProcStack['edges'][number]];
    const traffic = load(4, (i) => (i % 2 ? { nodeId: 'edge-closed', port: closed.port, sni: OK } : { nodeId: 'edge-open', port: open.port, sni: OK }), certs.ca);
    await sleep(1_000);
    await stack.policy.kill();
    const killedAt = Date.now();
    await sleep(1_500); // the 300 ms verdicts have expired everywhere
    const health = await healthStatus(stack.policyAddress).catch((e: Error & { code?: number }) => `error ${e.code ?? ''}`);
    const ready = { closed: await readyz(closed.metricsPort as number), open: await readyz(open.metricsPort as number) };
    const restartAt = Date.now();
    await stack.policy.restart();
    const backAt = Date.now(); // listening again
    // recovery: each edge decides by the rules again (its own reconnect back-off)
    const recovered: Record<string, number> = {};
    await waitFor(() => {
      const lines = readAudit(stack.auditLog);
      for (const f of traffic.flows) if (f.startedAt > restartAt && f.ok && !recovered[f.nodeId] && startIn(lines, f)?.reason === 'rule') recovered[f.nodeId] = f.at;
      return recovered['edge-closed'] !== undefined && recovered['edge-open'] !== undefined;
    }, 10_000, 50);
    const recoveredAt = Math.max(...Object.values(recovered));
    await sleep(2_500);
    const flows = await traffic.stop();
    const check = await settleAudit(() => readAudit(stack.auditLog), flows);
    const outage = (node: string): ClientFlow[] => flows.filter((f) => f.nodeId === node && f.startedAt > killedAt + 500 && f.at < restartAt);
    const startOf = (f: ClientFlow) => startIn(check.lines, f);
    console.log(
      `[faults] policy service down ${restartAt - killedAt} ms: failMode closed ${summary(outage('edge-closed'))}, open ${summary(outage('edge-open'))}; gRPC health while down: ${health}; edge /readyz closed ${ready.closed}, open ${ready.open}; back ${backAt - restartAt} ms after the restart, edges deciding by the rules again ${recovered['edge-closed']! - backAt} ms (closed) and ${recovered['edge-open']! - backAt} ms (open) after that; logs: ${JSON.stringify([...new Set(closed.log().split('\n').filter((l) => l.includes('"level":40')).map((l) => (JSON.parse(l) as { msg: string }).msg))])}`,
    );

    expect(outage('edge-closed').length).toBeGreaterThan(5);
    expect(outage('edge-open').length).toBeGreaterThan(5);
    for (const f of outage('edge-closed')) {
      expect(f.errorCode).toBe('ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
      expect(startOf(f)).toMatchObject({ verdict: 'deny', reason: 'policy-unavailable' });
    }
    for (const f of outage('edge-open')) {
      expect(f.body).toBe(BODY);
      expect(startOf(f)).toMatchObject({ verdict: 'allow', reason: 'fail-open' });
    }
    expect(recoveredAt - backAt).toBeLessThan(5_000);
    // Every flow started after the first decision by the rules (and the flows in flight then) is
    // decided by the rules. (The refusal once seen here in CI was most likely an outage flow's
    // record matched by client port alone: ports come round again within this test.)
    const after = flows.filter((f) => f.startedAt > recoveredAt + 500);
    expect(after.length).toBeGreaterThan(5);
    for (const f of after) expect(startOf(f)).toMatchObject({ verdict: 'allow', reason: expect.stringMatching(/^rule$/) });
    expect(check.incomplete.map((f) => `${f.nodeId} ${f.src}`)).toEqual([]);
    expect(check.duplicates).toBe(0);
    expect(check.unended).toEqual([]);
  });

  it('the only audit consumer killed with entries pending, restarted under its name: they are written once, nothing lost', async () => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const stack = await startProcStack({ redis, profile: PROFILE, resolve, edges: [{ nodeId: 'edge-q', upstreamPort: upstream.port }], audits: [{ consumer: 'solo', batchSize: 100, claimIdleMs: 60_000 }], auditMetrics: true });
    cleanup.push(() => stack.stop());
    const [edge] = stack.edges as [ProcStack['edges'][number]];
    const [audit] = stack.audits as [ProcStack['audits'][number]];
    const client = new Redis(redis.url);
    cleanup.push(() => client.disconnect());
    const traffic = load(2, () => ({ nodeId: 'edge-q', port: edge.port, sni: OK }), certs.ca);
    // a backlog on top of the real flows, so the consumer is busy when it dies
    const N = 10_000;
    const synthetic = (i: number): FlowEvent => ({ v: 1, event: i % 2 ? 'flow.end' : 'flow.start', flowId: `synthetic-${i >> 1}`, nodeId: 'synthetic', listener: 'tls', mode: 'sni', src: '10.0.0.1:1', dst: 'x.test:443', sni: 'x.test', connectHost: '', protocol: 'tls', verdict: 'allow', ruleId: 'ok', reason: 'rule', policyVersion: 1, startTime: new Date().toISOString(), ...(i % 2 ? { bytesUp: 1, bytesDown: 1, durationMs: 1, closeReason: 'closed', traceId: '' } : {}) }) as FlowEvent;
    for (let off = 0; off < N; off += 1_000) {
      const p = client.pipeline();
      for (let i = off; i < off + 1_000; i++) p.xadd(FLOW_STREAM, '*', 'data', encodeFlowEvent(synthetic(i)));
      await p.exec();
    }
    // freeze it mid-batch (delivered, not yet acknowledged), then kill it
    let pending = 0;
    for (let tries = 0; tries < 50 && pending === 0; tries++) {
      await sleep(10);
      audit.pause();
      pending = Number((await client.xpending(FLOW_STREAM, 'audit'))[0]);
      if (pending === 0) audit.resume();
    }
    const writtenAtKill = readAudit(stack.auditLog).length;
    await audit.kill();
    await sleep(1_500); // flows go on while nobody consumes
    const group = ((await client.xinfo('GROUPS', FLOW_STREAM)) as unknown[][])[0] ?? [];
    const lagWhileDown = Number(group[group.indexOf('lag') + 1] ?? 0);
    await audit.restart();
    await sleep(1_000);
    const flows = await traffic.stop();
    const check = await settleAudit(() => readAudit(stack.auditLog), flows);
    await waitFor(() => readAudit(stack.auditLog).filter((l) => l['nodeId'] === 'synthetic').length >= N, 20_000, 200);
    await sleep(1_000);
    const lines = readAudit(stack.auditLog);
    const m = await scrape(audit.metricsPort as number);
    console.log(
      `[faults] audit consumer killed with ${pending} entries pending (${writtenAtKill} lines written by then), lag while down ${lagWhileDown}; after restart: ${lines.length} lines, ${flows.length} client flows ${summary(flows)}; stream pending ${metric(m, 'portcullis_stream_pending')}, lag ${metric(m, 'portcullis_stream_lag')}`,
    );

    expect(pending).toBeGreaterThan(0);
    expect(lines.filter((l) => l['nodeId'] === 'synthetic')).toHaveLength(N);
    expect(check.incomplete.map((f) => f.src)).toEqual([]);
    expect(check.duplicates).toBe(0);
    expect(check.unended).toEqual([]);
    expect(Number((await client.xpending(FLOW_STREAM, 'audit'))[0])).toBe(0);
  });

  it('an edge worker killed (edge.workers: 2): the other keeps serving, the primary forks a new one; a SIGTERMed worker drains and loses nothing', async () => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const stack = await startProcStack({ redis, profile: PROFILE, resolve, edges: [{ nodeId: 'edge-w', upstreamPort: upstream.port, edge: { workers: 2 } }] });
    cleanup.push(() => stack.stop());
    const [edge] = stack.edges as [ProcStack['edges'][number]];
    const workers = childPids(edge.pid);
    expect(workers).toHaveLength(2);
    const [victim, survivor] = workers as [number, number];
    const listening = (pid: number): boolean => edge.lines('edge listening').some((l) => l['pid'] === pid);
    // each worker's relay accepts and sniffs on the socket the primary opened (native intake)
    const intakes = (pids: number[]): unknown[] => edge.lines('edge listening').filter((l) => pids.includes(l['pid'] as number)).map((l) => l['intake']);
    await waitFor(() => intakes(workers).length === 2, 2_000, 20); // log lines leave a worker within 200 ms
    expect(intakes(workers)).toEqual(['native', 'native']);
    const traffic = load(4, () => ({ nodeId: 'edge-w', port: edge.port, sni: OK }), certs.ca);
    // long enough that the workers' first event writes (connection, script load) are long done:
    // what SIGKILL may take is then only the last few milliseconds' events (graceMs below)
    await sleep(2_000);

    process.kill(victim, 'SIGKILL');
    const killedAt = Date.now();
    let replacement = 0;
    await waitFor(() => {
      replacement = childPids(edge.pid).find((p) => p !== survivor && p !== victim) ?? 0;
      return replacement > 0 && listening(replacement);
    }, 15_000, 20);
    const replacedAt = Date.now();
    await sleep(500);
    // now a graceful stop of the other one: it drains, exits 0, and is replaced too
    process.kill(survivor, 'SIGTERM');
    const termAt = Date.now();
    await waitFor(() => childPids(edge.pid).some((p) => p !== survivor && p !== replacement && listening(p)), 15_000, 20);
    await sleep(1_000);
    const flows = await traffic.stop();

    const gap = flows.filter((f) => f.startedAt >= killedAt && f.at <= replacedAt);
    const failed = flows.filter((f) => !f.ok);
    // SIGKILL takes what the victim had not yet written to the stream: flows it carried shortly
    // before the kill may lack their flow.end. Only those (by time) are excused; everything else
    // must be complete, the SIGTERMed worker's flows included.
    const graceMs = 1_000;
    const aroundKill = (f: ClientFlow): boolean => f.at >= killedAt - graceMs && f.startedAt <= killedAt + 50;
    const mustHave = flows.filter((f) => !aroundKill(f));
    const check = await settleAudit(() => readAudit(stack.auditLog), mustHave);
    const all = checkAudit(check.lines, flows);
    const died = edge.lines('edge worker died');
    console.log(
      `[faults] worker ${victim} SIGKILLed: replacement ${replacement} listening after ${replacedAt - killedAt} ms, ${gap.length} flows completed meanwhile ${summary(gap)}; worker ${survivor} SIGTERMed at +${termAt - killedAt} ms; ${flows.length} flows ${summary(flows)}; failed (started, ended, ms after the kill): ${JSON.stringify(failed.map((f) => [f.startedAt - killedAt, f.at - killedAt, f.errorCode ?? 'closed']))}; incomplete in the audit log: ${all.incomplete.length} (all around the kill: ${all.incomplete.every(aroundKill)}) ${JSON.stringify(all.incomplete.filter((f) => !aroundKill(f)).map((f) => [f.src, f.startedAt - killedAt, f.at - killedAt, f.ok, all.lines.filter((l) => l['src'] === f.src).map((l) => `${l.event}@${String(l['nodeId'])}`)]))}; log: ${JSON.stringify(died.map((d) => ({ signal: d['signal'], code: d['code'], restartInMs: d['restartInMs'] })))}`,
    );

    expect(died.map((d) => d['signal'])).toEqual(['SIGKILL', null]);
    // the replacements inherit the primary's sockets too
    expect(intakes([replacement])).toEqual(['native']);
    expect(died[1]?.['code']).toBe(0);
    expect(gap.length).toBeGreaterThan(0); // the survivor served while the victim was being replaced
    // only flows in flight on the victim fail
    expect(failed.every((f) => f.startedAt >= killedAt - graceMs && f.startedAt <= killedAt + 50)).toBe(true);
    expect(failed.length).toBeLessThanOrEqual(4);
    expect(flows.filter((f) => f.startedAt > killedAt + 100).every((f) => f.ok)).toBe(true);
    expect(check.incomplete.map((f) => f.src)).toEqual([]);
    expect(all.duplicates).toBe(0);
    // every flow that a living worker started has ended
    const excused = new Set(all.incomplete.map((f) => f.src));
    expect(all.unended.filter((l) => !excused.has(String(l['src']))).map((l) => l['src'])).toEqual([]);
  });

  // Was a bug: a connection the cluster primary had handed to a worker that died before taking it
  // was never closed nor given to another worker: the client hung (no sniff timeout applies, no
  // worker owns the socket) and the primary kept the socket in CLOSE_WAIT for ever. That is
  // node:cluster's round-robin handoff (the primary closes or re-queues a handed-off connection
  // only on the worker's ack; a dead worker never acks). libs/edge/src/workers.ts now has the
  // workers accept from the shared socket themselves (cluster.SCHED_NONE). Repro: workers: 2,
  // steady load, SIGSTOP one worker for 300 ms (a handoff was then in flight to it), SIGKILL it.
  it('an edge worker killed while a connection is being handed to it: no client hangs, no socket left in the primary', async () => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const stack = await startProcStack({ redis, profile: PROFILE, resolve, edges: [{ nodeId: 'edge-h', upstreamPort: upstream.port, edge: { workers: 2, sniffTimeoutMs: 1_000 } }] });
    cleanup.push(() => stack.stop());
    const [edge] = stack.edges as [ProcStack['edges'][number]];
    const [victim] = childPids(edge.pid) as [number];
    const traffic = load(4, () => ({ nodeId: 'edge-h', port: edge.port, sni: OK }), certs.ca);
    await sleep(500);
    process.kill(victim, 'SIGSTOP');
    await sleep(300);
    process.kill(victim, 'SIGKILL');
    await sleep(4_000);
    const flows = await traffic.stop();
    await sleep(500);
    const after = flows.filter((f) => f.startedAt > Date.now() - 3_000);
    console.log(`[faults] worker ${victim} stopped 300 ms, then killed: ${flows.length} flows ${summary(flows)}; in the last 3 s ${summary(after)}`);
    // every connection ended within the sniff timeout plus slack, one way or another
    expect(flows.filter((f) => f.errorCode === 'TIMEOUT')).toEqual([]);
    const primarySockets = (await socketStates([edge.port])).lines.filter((l) => l.startsWith('CLOSE-WAIT'));
    expect(primarySockets).toEqual([]);
    // and the survivor (then the replacement too) kept serving
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((f) => f.ok)).toBe(true);
  });

  // Was a bug: with edge.workers > 1 and metrics.listen set, every worker runs runServiceMain and starts
  // its own metrics server on the port the primary already holds: "bind EADDRINUSE", exit 1, the
  // primary restarts it with a growing back-off (200 ms … 30 s), for ever. The edge never serves
  // and its /readyz stays 503. docker/k8s/config/edge.yaml has exactly this (workers: 2 +
  // metrics.listen). libs/platform/src/lifecycle.ts runServiceMain (startMetricsServer before
  // start) with libs/edge/src/workers.ts (cluster.fork). Unskip once fixed.
  it('edge.workers: 2 with metrics.listen: the workers serve, /readyz is 200 and /metrics answers', async () => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const stack = await startProcStack({ redis, profile: PROFILE, resolve, edges: [{ nodeId: 'edge-wm', upstreamPort: upstream.port, metrics: true, edge: { workers: 2 } }] });
    cleanup.push(() => stack.stop());
    const [edge] = stack.edges as [ProcStack['edges'][number]];
    expect(childPids(edge.pid)).toHaveLength(2);
    expect(await readyz(edge.metricsPort as number)).toBe(200);
    for (let i = 0; i < 4; i++) expect((await tlsFlow('edge-wm', edge.port, OK, certs.ca)).body).toBe(BODY);
    expect(metric(await scrape(edge.metricsPort as number), 'portcullis_flows_total', { verdict: 'allow' })).toBeGreaterThan(0);
    expect(edge.lines('edge worker died')).toEqual([]);
  });

  // Was a known gap: with edge.workers > 1 each worker kept its own metrics and the shared metrics
  // port handed each scrape to one worker (cluster round robin), so one scrape saw one worker's
  // counters. The primary now serves the port and merges what each worker answers over IPC.
  it("edge.workers: 2 — one scrape of /metrics counts every worker's flows; a stopped worker delays it 1 s at most; a killed one's counts stay", async () => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const stack = await startProcStack({ redis, profile: PROFILE, resolve, edges: [{ nodeId: 'edge-wm2', upstreamPort: upstream.port, metrics: true, edge: { workers: 2 } }] });
    cleanup.push(() => stack.stop());
    const [edge] = stack.edges as [ProcStack['edges'][number]];
    const port = edge.metricsPort as number;
    const workers = childPids(edge.pid);
    expect(workers).toHaveLength(2);
    const allowed = async (): Promise<number> => metric(await scrape(port), 'portcullis_flows_total', { verdict: 'allow' });
    // the workers accept for themselves: run flows side by side until each has served some
    const servedBy = (pid: number): number => edge.lines('flow.end').filter((l) => l['pid'] === pid).length;
    let total = 0;
    await waitFor(
      async () => {
        const r = await Promise.all(Array.from({ length: 8 }, () => tlsFlow('edge-wm2', edge.port, OK, certs.ca)));
        total += r.filter((f) => f.body === BODY).length;
        return workers.every((p) => servedBy(p) > 0);
      },
      30_000,
      50,
    );
    await waitFor(async () => (await allowed()) === total, 5_000, 100).catch(() => undefined);
    let m = await scrape(port);
    console.log(`[faults] ${total} flows, by worker ${JSON.stringify(workers.map(servedBy))}; one scrape counts ${metric(m, 'portcullis_flows_total', { verdict: 'allow' })}`);
    expect(metric(m, 'portcullis_flows_total', { verdict: 'allow' })).toBe(total);
    expect(metric(m, 'portcullis_edge_workers')).toBe(2);
    expect(metric(m, 'portcullis_metrics_unanswered_workers')).toBe(0);
    expect(metric(m, 'process_open_fds')).toBeGreaterThan(0);
    expect(await readyz(port)).toBe(200);

    // a stopped worker: the scrape waits for it at most a second, serves its earlier numbers and says so
    const [stopped] = workers as [number, number];
    process.kill(stopped, 'SIGSTOP');
    try {
      const t0 = Date.now();
      m = await scrape(port);
      const ms = Date.now() - t0;
      console.log(`[faults] scrape with worker ${stopped} stopped: ${ms} ms`);
      expect(ms).toBeLessThan(2_500);
      expect(metric(m, 'portcullis_flows_total', { verdict: 'allow' })).toBe(total);
      expect(metric(m, 'portcullis_metrics_unanswered_workers')).toBe(1);
      expect(await readyz(port)).toBe(503);
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
    await waitFor(async () => (await readyz(port)) === 200, 5_000, 100);

    // a killed worker: what it had counted stays in the totals (no counter reset), its replacement adds
    await scrape(port);
    process.kill(stopped, 'SIGKILL');
    // ready again as soon as the survivor answers; the replacement is counted once it listens
    await waitFor(async () => (await readyz(port)) === 200, 15_000, 100);
    await waitFor(async () => metric(await scrape(port), 'portcullis_edge_workers') === 2, 15_000, 100);
    const more = await Promise.all(Array.from({ length: 4 }, () => tlsFlow('edge-wm2', edge.port, OK, certs.ca)));
    total += more.filter((f) => f.body === BODY).length;
    await waitFor(async () => (await allowed()) >= total, 5_000, 100).catch(() => undefined);
    m = await scrape(port);
    expect(metric(m, 'portcullis_flows_total', { verdict: 'allow' })).toBe(total);
    expect(metric(m, 'portcullis_edge_worker_exits_total')).toBe(1);
    expect(childPids(edge.pid)).not.toContain(stopped);
  });

  it('an edge with few file descriptors (prlimit --nofile=256): maxConnections clamped with a warning at start; a flood past them is shed at once and counted; the edge survives and serves again', async () => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const stack = await startProcStack({ redis, profile: PROFILE, resolve, edges: [{ nodeId: 'edge-fd', upstreamPort: upstream.port, metrics: true, nofile: 256, edge: { sniffTimeoutMs: 2_000 } }] });
    cleanup.push(() => stack.stop());
    const [edge] = stack.edges as [ProcStack['edges'][number]];
    const port = edge.metricsPort as number;
    const warning = edge
      .log()
      .split('\n')
      .filter((l) => l.includes('edge.maxConnections needs more file descriptors'))
      .map((l) => JSON.parse(l) as Record<string, number>)[0];
    expect(warning).toMatchObject({ maxConnections: 50_000, openFilesLimit: 256 });
    expect(warning?.['clampedTo']).toBeGreaterThan(10);
    expect(warning?.['clampedTo']).toBeLessThan(128);
    expect((await tlsFlow('edge-fd', edge.port, OK, certs.ca)).body).toBe(BODY);

    // 600 clients that connect, say nothing and never close their side: far more than 256 descriptors hold
    const clients: Socket[] = [];
    for (let i = 0; i < 600; i += 100) {
      const batch = Array.from({ length: 100 }, () => {
        const c = netConnect({ port: edge.port, host: '127.0.0.1', allowHalfOpen: true });
        c.on('error', () => undefined);
        clients.push(c);
        return new Promise<void>((r) => {
          c.once('connect', () => r());
          c.once('close', () => r());
        });
      });
      await Promise.all(batch);
    }
    await sleep(300);
    // the metrics port still answers in the middle of it (the edge keeps descriptors in hand)
    const m = await scrape(port);
    const shed = metric(m, 'portcullis_accept_errors_total', { code: 'fd-limit' });
    const limited = metric(m, 'portcullis_flows_total', { reason: 'connection-limit' });
    const openFds = metric(m, 'process_open_fds');
    console.log(`[faults] 600 silent clients at an edge with 256 descriptors (maxConnections clamped to ${warning?.['clampedTo']}): ${shed} shed at once (fd-limit), ${limited} refused (connection-limit), edge descriptors open ${openFds} of ${metric(m, 'process_max_fds')}`);
    expect(edge.alive()).toBe(true);
    expect(shed).toBeGreaterThan(0);
    expect(openFds).toBeLessThanOrEqual(256);
    expect(metric(m, 'portcullis_flows_total', { reason: 'fd-limit' })).toBe(shed); // audited like any refusal

    for (const c of clients) c.destroy();
    await waitFor(async () => metric(await scrape(port), 'portcullis_active_flows') === 0, 10_000, 200);
    for (let i = 0; i < 4; i++) expect((await tlsFlow('edge-fd', edge.port, OK, certs.ca)).body).toBe(BODY);
    expect(edge.alive()).toBe(true);
    expect(edge.lines('flow handler failed')).toEqual([]);
  });
});
