// The policy service stopped and started again and again while decisions keep flowing, through an
// edge process (TLS flows, checked in the audit log) and through the edge's DecisionClient in this
// process (many more decisions, each with its source and time). While the service is down,
// failMode closed refuses with policy-unavailable, as documented. Once a client has had its first
// answer from the service again, none of its decisions may be refused until the next stop (a CI
// run of the faults test once reported one refused about a second after recovery), and that first
// answer must come soon after the new process listens.
//
// Flows are found in the audit log by client port and start time: a port comes round again within
// a run this long (a few percent of the flows), so the port alone can name an older flow's record.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecisionClient } from '@portcullis/edge';
import type { Verdict } from '@portcullis/edge';
import { makeCerts, startRedis, startTlsUpstream } from '@portcullis/testing';
import type { TestCerts, TestRedis, TlsUpstream } from '@portcullis/testing';
import { readAudit } from '../support/audit-log';
import type { AuditLine } from '../support/audit-log';
import { load, settleAudit, startProcStack } from '../soak/support/proc-stack';
import type { ClientFlow, ProcStack } from '../soak/support/proc-stack';

const PROFILE = `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: restarts
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: ok
    action: allow
    fqdns: [".ok.test"]
    allowPrivate: ["127.0.0.0/8"] # the test upstream lives on loopback
`;
/** a few names, so that the edge's flows do not all share one in-flight decision */
const NAMES = Array.from({ length: 6 }, (_, i) => `n${i}.ok.test`);
const CYCLES = 4;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Decided {
  startedAt: number;
  at: number;
  source: Verdict['source'];
  reason: string;
}

interface Cycle {
  n: number;
  how: 'SIGKILL' | 'SIGTERM';
  stoppedAt: number;
  /** the old process is gone */
  downAt: number;
  restartAt: number;
  /** the new process logged "policy-service listening" */
  backAt: number;
}

/** Decisions refused after `recovered(cycle)` and before the next stop (or the end), per cycle. */
function refusedAfterRecovery<T>(cycles: Cycle[], items: T[], startedAt: (t: T) => number, at: (t: T) => number, answered: (t: T) => boolean, endAt: number) {
  return cycles.map((c, i) => {
    const until = cycles[i + 1]?.stoppedAt ?? endAt;
    const first = items.filter((t) => startedAt(t) >= c.restartAt && at(t) < until && answered(t)).sort((a, b) => at(a) - at(b))[0];
    const recoveredAt = first ? at(first) : Number.POSITIVE_INFINITY;
    const after = items.filter((t) => startedAt(t) >= recoveredAt && at(t) < until);
    return { cycle: c.n, how: c.how, recoveredMs: recoveredAt - c.backAt, after: after.length, refused: after.filter((t) => !answered(t)) };
  });
}

describe('policy service restarted under load', () => {
  let certs: TestCerts;
  let upstream: TlsUpstream;
  let redis: TestRedis;
  let stack: ProcStack;

  beforeAll(async () => {
    certs = makeCerts(NAMES);
    upstream = await startTlsUpstream(certs);
    redis = await startRedis();
    // verdicts of 100 ms: flows keep asking the service rather than living off the edge's L1
    stack = await startProcStack({ redis, profile: PROFILE, resolve: Object.fromEntries(NAMES.map((n) => [n, ['127.0.0.1']])), policy: { verdictTtlMs: 100 }, edges: [{ nodeId: 'edge-r', upstreamPort: upstream.port }] });
  });
  afterAll(async () => {
    await stack?.stop();
    await redis?.stop();
    await upstream?.close();
  });

  it(`${CYCLES} stops (SIGKILL and SIGTERM in turn): no decision refused once a client has its first answer again`, async () => {
    const [edge] = stack.edges as [ProcStack['edges'][number]];
    const client = new DecisionClient({ address: stack.policyAddress, nodeId: 'test-r', decideTimeoutMs: 250, l1Size: 10_000, failMode: 'closed', serveStaleMs: 0, log: pino({ level: 'silent' }) });
    client.start();
    // every decision a fresh name: each one goes to the service
    const decided: Decided[] = [];
    let running = true;
    let seq = 0;
    const loops = Array.from({ length: 8 }, async () => {
      while (running) {
        const startedAt = Date.now();
        const v = await client.decide({ sni: `d${seq++}.ok.test`, connectHost: '', port: 443, sourceIp: '127.0.0.1', protocol: 'tls', ech: false, echGrease: false, noNameReason: '', listener: 'tls', flowId: '', traceparent: '' });
        decided.push({ startedAt, at: Date.now(), source: v.source, reason: v.reason });
        await sleep(2);
      }
    });
    const traffic = load(4, (i) => ({ nodeId: 'edge-r', port: edge.port, sni: NAMES[i % NAMES.length] as string }), certs.ca);
    const cycles: Cycle[] = [];
    let streamCallsAtBack = 0;
    const loopStart = Date.now();
    try {
      await sleep(1_000);
      for (let n = 1; n <= CYCLES; n++) {
        const how = n % 2 ? 'SIGKILL' : 'SIGTERM';
        const stoppedAt = Date.now();
        if (how === 'SIGKILL') await stack.policy.kill();
        else await stack.policy.stop(3_000);
        const downAt = Date.now();
        await sleep(300 + 150 * n); // outages of different lengths meet the clients' retry timers at different points
        const restartAt = Date.now();
        await stack.policy.restart();
        cycles.push({ n, how, stoppedAt, downAt, restartAt, backAt: Date.now() });
        streamCallsAtBack = client.stats.streamCalls;
        await sleep(1_500); // past the switch back to the stream (at the first answer, or a second after it broke)
      }
    } finally {
      running = false;
      await Promise.all(loops);
      client.close();
    }
    const streamAfterLast = client.stats.streamCalls - streamCallsAtBack;
    const loopMs = Date.now() - loopStart;
    const endAt = Date.now();
    const flows = await traffic.stop();
    const check = await settleAudit(() => readAudit(stack.auditLog), flows);
    // a client port comes round again in a run this long: a flow's record is the one with its port that started closest to it
    const starts = new Map<string, AuditLine[]>();
    for (const l of check.lines) if (l.event === 'flow.start') starts.set(String(l['src']), [...(starts.get(String(l['src'])) ?? []), l]);
    const reasonOf = (f: ClientFlow): string => {
      const near = (starts.get(f.src) ?? []).map((l) => ({ l, d: Math.abs(Date.parse(String(l['startTime'])) - f.startedAt) })).sort((a, b) => a.d - b.d)[0];
      return near && near.d < 1_000 ? near.l.reason : f.src ? 'no flow.start' : (f.errorCode ?? 'no connection');
    };

    const inProcess = refusedAfterRecovery(cycles, decided, (d) => d.startedAt, (d) => d.at, (d) => d.source === 'service', endAt);
    const viaEdge = refusedAfterRecovery(cycles, flows, (f) => f.startedAt, (f) => f.at, (f) => f.ok, endAt);
    const refusedWhileDown = decided.filter((d) => cycles.some((c) => d.startedAt > c.downAt + 50 && d.at < c.restartAt));
    const edgeWarnings = [...new Set(['decide failed', 'decide refused', 'decide timed out'].flatMap((m) => edge.lines(m)).map((l) => `${String(l['msg'])}: ${String(l['details'] ?? l['error'] ?? '').slice(0, 80)}`))];
    const show = (r: ReturnType<typeof refusedAfterRecovery>): string =>
      r.map((c) => `#${c.cycle} ${c.how}: first answer ${c.recoveredMs} ms after "listening", then ${c.after} decided, ${c.refused.length} refused`).join('; ');
    console.log(`[restarts] ${CYCLES} cycles in ${loopMs} ms: ${cycles.map((c) => `stop ${c.downAt - c.stoppedAt} ms, start ${c.backAt - c.restartAt} ms`).join('; ')}`);
    console.log(`[restarts] in-process DecisionClient: ${decided.length} decisions (${streamAfterLast} over the stream after the last restart); ${show(inProcess)}`);
    console.log(`[restarts] edge: ${flows.length} flows (${flows.length - new Set(flows.map((f) => f.src)).size} reusing a client port); ${show(viaEdge)}; edge warnings: ${JSON.stringify(edgeWarnings)}`);
    for (const c of viaEdge) for (const f of c.refused) console.log(`[restarts] edge refused after recovery (#${c.cycle}): ${f.src} ${f.startedAt - (cycles[c.cycle - 1] as Cycle).backAt} ms after "listening": ${reasonOf(f)}`);

    // while it is down: failMode closed, as documented
    expect(refusedWhileDown.length).toBeGreaterThan(0);
    for (const d of refusedWhileDown) expect({ source: d.source, reason: d.reason }).toEqual({ source: 'fail-closed', reason: 'policy-unavailable' });
    // back: every client answers again within its channel's reconnect back-off (at most 0.6 s) and some scheduling slack ...
    for (const c of [...inProcess, ...viaEdge]) expect(c.recoveredMs).toBeLessThan(1_500);
    // ... from its first answer on, nothing refused until the next stop ...
    for (const c of [...inProcess, ...viaEdge]) expect(c.after).toBeGreaterThan(0);
    expect(inProcess.map((c) => c.refused.map((d) => `${d.startedAt - (cycles[c.cycle - 1] as Cycle).backAt} ms: ${d.source} ${d.reason}`))).toEqual(cycles.map(() => []));
    expect(viaEdge.map((c) => c.refused.map((f) => `${f.src} ${reasonOf(f)}`))).toEqual(cycles.map(() => []));
    // ... and the decisions went back to the DecideStream
    expect(streamAfterLast).toBeGreaterThan(0);
    expect(check.incomplete.map((f) => `${f.nodeId} ${f.src}`)).toEqual([]);
  });
});
