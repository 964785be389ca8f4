// The fleet on one machine (issue 8): 3 edge processes, 2 policy-service replicas, 2 audit-service
// instances and one redis-server, each service a separate process with its own config. Edges 1
// and 3 ask policy replica A, edge 2 asks replica B.
//   1. A profile applied through replica A is enforced by every edge within 1 s (propagation:
//      Redis pub/sub → replica B → WatchPolicy → the edges' L1 caches), with each edge's L1 warm
//      for the flipped name before the apply, so the switch is an invalidation, not a cold miss.
//   2. Under steady load, SIGKILL of one edge, one policy replica and one audit instance: flows go
//      on through the survivors, the edge whose replica died is observed (and recovers once the
//      replica is back), and the audit log holds every completed flow's start and end exactly once.
import { get as httpGet } from 'node:http';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOW_STREAM } from '@portcullis/flow-events';
import { waitFor } from '@portcullis/testing';
import { readAudit } from '../support/audit-log';
import type { AuditLine } from '../support/audit-log';
import { FLIP, fleetProfile, fmtMs, fresh, measurePropagation, probe, startFleet, STEADY, tlsFlow, warmL1 } from '../support/fleet';
import type { Fleet, FlowResult, Member } from '../support/fleet';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How many stream entries an audit instance claimed from idle consumers (from its log). */
function claimedBy(m: Member): number {
  let n = 0;
  for (const line of m.proc.output.join('').split('\n')) {
    if (!line.includes('audit.claimed')) continue;
    try {
      n += Number((JSON.parse(line) as { count?: number }).count ?? 0);
    } catch {
      // not a JSON log line
    }
  }
  return n;
}

function readyz(port: number): Promise<number> {
  return new Promise((resolve) => {
    httpGet({ host: '127.0.0.1', port, path: '/readyz' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', () => resolve(0));
  });
}

describe('fleet on one machine: 3 edges, 2 policy replicas, 2 audit instances, one Redis', () => {
  let fleet: Fleet;

  beforeAll(async () => {
    fleet = await startFleet();
  }, 60_000);

  afterAll(async () => {
    await fleet?.stop();
  }, 30_000);

  it('a profile applied through one replica is enforced by all 3 edges within 1 s (L1 warm: invalidation, not a cold miss)', async () => {
    const result = await measurePropagation(fleet, { rounds: 8, via: 0, intervalMs: 10, timeoutMs: 3_000, log: (l) => console.log(`  propagation ${l}`) });
    console.log(`  propagation apply return → every edge enforcing (slowest edge per round): ${fmtMs(result.allEdges)}`);
    console.log(`  propagation apply return → edge enforcing (each edge × round): ${fmtMs(result.overall)}`);
    console.log(`  propagation apply start  → edge enforcing: ${fmtMs(result.overallFromStart)}`);
    console.log(`  propagation newly denied only: ${fmtMs(result.denyRounds)}`);
    for (const [edge, p] of Object.entries(result.perEdge)) console.log(`  propagation ${edge}: ${fmtMs(p)}`);

    expect(result.rounds).toHaveLength(8);
    // every round's warm-up probe was answered from the edge's L1
    expect(result.rounds.map((r) => r.warmL1Hit)).toEqual(result.rounds.map(() => true));
    for (const r of result.rounds) {
      expect(r.edges.map((e) => e.edge).sort()).toEqual(['edge-1', 'edge-2', 'edge-3']);
      for (const e of r.edges) expect(e.fromReturnMs, `round ${r.round} ${e.edge}`).toBeLessThanOrEqual(1_000);
    }
  });

  it('kill -9 of an edge, a policy replica and an audit instance under load: flows go on, the audit log stays complete', async () => {
    const [edge1, edge2, edge3] = fleet.edges as [Member, Member, Member];
    const [policyA, policyB] = fleet.policies as [Member, Member];
    const [auditA] = fleet.audits as [Member, Member];
    expect(edge2.policyIndex).toBe(1); // edge-2 asks replica B, the one killed below
    // FLIP allowed and in edge-2's L1 before the outage (for the stale-policy observation)
    const before = await fleet.admin(0).apply({ content: fleetProfile('allow', 'before the kill'), author: 'fleet-test' });
    expect(await warmL1(edge2, FLIP, before.version)).toBe('allow');

    // steady load: 4 clients, each request tried on the edges in turn until one completes it
    interface Done extends FlowResult {
      edge: string;
    }
    const completed: Done[] = [];
    const attempts: { edge: string; at: number; errorCode?: string }[] = [];
    let failedRequests = 0;
    let running = true;
    let rr = 0;
    const client = async (): Promise<void> => {
      while (running) {
        const first = rr++;
        let done = false;
        for (let k = 0; k < fleet.edges.length && !done; k++) {
          const e = fleet.edges[(first + k) % fleet.edges.length] as Member;
          const r = await tlsFlow(e.port, STEADY, fleet.certs.ca, 3_000);
          attempts.push({ edge: e.name, at: r.at, ...(r.errorCode ? { errorCode: r.errorCode } : {}) });
          if (r.ok && r.body === `hello from upstream ${STEADY}\n`) {
            completed.push({ ...r, edge: e.name });
            done = true;
          }
        }
        if (!done) failedRequests++;
      }
    };
    const clients = Promise.all([client(), client(), client(), client()]);
    await sleep(1_500);
    const beforeKill = completed.length;
    expect(new Set(completed.map((c) => c.edge))).toEqual(new Set(['edge-1', 'edge-2', 'edge-3']));

    // SIGKILL one of each kind
    const killAt = Date.now();
    await Promise.all([edge1.kill(), policyB.kill(), auditA.kill()]);
    console.log(`  killed ${edge1.name}, ${policyB.name}, ${auditA.name} after ${beforeKill} completed flows`);

    // edge-2 asks the dead replica B. What happens? Names in its L1 (STEADY, FLIP) keep their
    // verdicts; a name it has not cached needs the policy service.
    await sleep(500);
    const cold: { name: string; result: string }[] = [];
    for (let i = 0; i < 5; i++) cold.push({ name: fresh(i), result: await probe(edge2.port, fresh(i)) });
    const coldOnEdge3 = await probe(edge3.port, fresh(100));
    const edge2Ready = await readyz(edge2.metricsPort);
    console.log(`  edge-2 (replica B dead), names not in its L1: ${cold.map((c) => `${c.name} ${c.result}`).join(', ')}; its /readyz: ${edge2Ready}; edge-3 (replica A): ${fresh(100)} ${coldOnEdge3}`);
    expect(coldOnEdge3).toBe('allow');

    // a policy change applied (through A) while B is dead: edge-2 cannot learn it
    const applied = await fleet.admin(0).apply({ content: fleetProfile('deny', 'during the outage'), author: 'fleet-test' });
    await waitFor(async () => (await probe(edge3.port, FLIP)) === 'deny', 1_000);
    await sleep(500);
    const flipOnEdge2 = await probe(edge2.port, FLIP);
    console.log(`  policy v${applied.version} (denies ${FLIP}) applied through A while B is dead: edge-3 denies it, edge-2 gives it "${flipOnEdge2}"`);

    await sleep(1_000);
    const duringOutage = completed.filter((c) => c.at > killAt + 200);
    const outagePerEdge = Object.fromEntries(['edge-1', 'edge-2', 'edge-3'].map((n) => [n, duringOutage.filter((c) => c.edge === n).length]));
    console.log(`  flows completed during the outage per edge: ${JSON.stringify(outagePerEdge)}; failed requests so far: ${failedRequests}`);

    // bring B back; edge-2 must decide cold names again and learn the policy applied meanwhile
    const restartAt = Date.now();
    await policyB.restart();
    let recovered = 0;
    await waitFor(
      async () => {
        const ok = (await probe(edge2.port, fresh(10 + (recovered++ % 80)))) === 'allow' && (await probe(edge2.port, FLIP)) === 'deny';
        return ok;
      },
      10_000,
      50,
    ).catch(() => {
      throw new Error(`edge-2 did not recover after ${policyB.name} came back\n${fleet.logs()}`);
    });
    console.log(`  edge-2 recovered ${Date.now() - restartAt} ms after ${policyB.name} was restarted (${recovered} probes)`);
    await sleep(1_000);
    running = false;
    await clients;

    // flows continued through the survivors, with client retries
    expect(failedRequests).toBe(0);
    expect(outagePerEdge['edge-1']).toBe(0);
    expect(outagePerEdge['edge-2']).toBeGreaterThan(0); // L1 hits, with its replica dead
    expect(outagePerEdge['edge-3']).toBeGreaterThan(0);
    expect(policyA.alive()).toBe(true);

    // the audit log: every flow a client completed has its flow.start and flow.end exactly once;
    // the surviving audit instance took over audit-a's pending entries
    const redis = new Redis(fleet.redis.url);
    try {
      const key = (nodeId: string, src: string): string => `${nodeId}|${src}`;
      // The killed edge loses what it had not yet written to the stream: flows that completed
      // shortly before the kill may lack their flow.end (or both events). Only those are excused.
      const graceMs = 1_000;
      const mustHave = completed.filter((c) => c.edge !== 'edge-1' || c.at < killAt - graceMs);
      const excused = completed.filter((c) => c.edge === 'edge-1' && c.at >= killAt - graceMs);
      // a client port can come round again within one run: expect each (edge, src) as often as it completed
      const want = new Map<string, number>();
      for (const c of completed) want.set(key(c.edge, c.src), (want.get(key(c.edge, c.src)) ?? 0) + 1);
      const times = (c: { edge: string; src: string }): number => want.get(key(c.edge, c.src)) ?? 0;
      const count = (lines: AuditLine[]): Map<string, { start: number; end: number }> => {
        const m = new Map<string, { start: number; end: number }>();
        for (const l of lines) {
          if (l.sni !== STEADY || l.verdict !== 'allow') continue;
          const k = key(String(l['nodeId']), String(l['src']));
          const c = m.get(k) ?? { start: 0, end: 0 };
          if (l.event === 'flow.start') c.start++;
          else c.end++;
          m.set(k, c);
        }
        return m;
      };
      await waitFor(
        () => {
          const m = count(readAudit(fleet.auditLog));
          return mustHave.every((c) => m.get(key(c.edge, c.src))?.end === times(c));
        },
        20_000,
        200,
      ).catch(() => undefined);
      await waitFor(async () => Number((await redis.xpending(FLOW_STREAM, 'audit'))[0]) === 0, 10_000, 200).catch(() => undefined);
      await sleep(1_500); // a late duplicate would show up now
      const lines = readAudit(fleet.auditLog);
      const m = count(lines);
      const missing = mustHave.filter((c) => {
        const x = m.get(key(c.edge, c.src));
        return x?.start !== times(c) || x.end !== times(c);
      });
      const excusedIncomplete = excused.filter((c) => {
        const x = m.get(key(c.edge, c.src));
        return x?.start !== times(c) || x.end !== times(c);
      });
      console.log(
        `  audit: ${completed.length} completed client flows (${mustHave.length} must be complete, ${excused.length} on edge-1 within ${graceMs} ms of its kill, of which ${excusedIncomplete.length} incomplete); ${lines.length} lines; audit-b claimed ${claimedBy(fleet.audits[1] as Member)} entries left pending`,
      );
      for (const c of excusedIncomplete) {
        const x = m.get(key(c.edge, c.src)) ?? { start: 0, end: 0 };
        console.log(`  audit: edge-1 flow ${c.src}, completed for its client ${c.at <= killAt ? `${killAt - c.at} ms before` : `${c.at - killAt} ms after`} the SIGKILL was sent, lost with the process: ${x.start} flow.start, ${x.end} flow.end on record`);
      }
      expect(missing.map((c) => `${c.edge} ${c.src}`)).toEqual([]);
      // nothing twice, anywhere in the log
      const ids = lines.map((l) => `${l.flowId}|${l.event}`);
      expect(ids.length - new Set(ids).size).toBe(0);
      // an excused flow may lack its events, never have more than its (edge, src) completed: the
      // client port may have come round again (seen in CI: 2 flow.starts for a port used twice)
      for (const c of excused) {
        const x = m.get(key(c.edge, c.src));
        expect(x?.start ?? 0).toBeLessThanOrEqual(times(c));
        expect(x?.end ?? 0).toBeLessThanOrEqual(times(c));
      }
      // every flow the surviving edges started (probes and refusals too) has ended
      const survivors = lines.filter((l) => l['nodeId'] !== 'edge-1');
      const starts = new Set(survivors.filter((l) => l.event === 'flow.start').map((l) => l.flowId));
      const ends = new Set(survivors.filter((l) => l.event === 'flow.end').map((l) => l.flowId));
      expect([...starts].filter((f) => !ends.has(f))).toEqual([]);
      expect(Number((await redis.xpending(FLOW_STREAM, 'audit'))[0])).toBe(0);
      // the fail-closed refusals on edge-2 are on record as such
      const coldDenied = cold.filter((c) => c.result === 'deny').map((c) => c.name);
      const reasons = lines.filter((l) => l.event === 'flow.start' && l['nodeId'] === 'edge-2' && coldDenied.includes(l.sni)).map((l) => l.reason);
      expect(reasons).toEqual(coldDenied.map(() => 'policy-unavailable'));
    } finally {
      redis.disconnect();
    }
  }, 80_000);

  // BUG: an edge knows one policy replica (edge.policyService HOST:PORT). When that replica dies the
  // Was a bug: with its WatchPolicy stream down an edge kept its L1 verdicts until verdictTtlMs.
  // Now L1 stops answering 1 s after the watch breaks (serveStaleMs decides whether stale ones serve).
  it('an edge whose policy replica died does not keep allowing a name denied by a profile applied since (1 s bound, degraded fleet)', async () => {
    const edge2 = fleet.edges[1] as Member;
    const policyB = fleet.policies[1] as Member;
    const before = await fleet.admin(0).apply({ content: fleetProfile('allow', 'before the kill'), author: 'fleet-test' });
    expect(await warmL1(edge2, FLIP, before.version)).toBe('allow'); // in edge-2's L1
    await policyB.kill();
    try {
      await fleet.admin(0).apply({ content: fleetProfile('deny', 'replica B dead'), author: 'fleet-test' });
      await sleep(1_000);
      expect(await probe(edge2.port, FLIP)).toBe('deny'); // by the new policy, or failing closed
    } finally {
      await policyB.restart();
    }
  });

  // Was a bug: readiness ignored the policy service. Now /readyz follows the watch stream.
  it('an edge that cannot reach its policy replica reports not ready, and ready again once it is back', async () => {
    const edge2 = fleet.edges[1] as Member;
    const policyB = fleet.policies[1] as Member;
    await waitFor(async () => (await readyz(edge2.metricsPort)) === 200, 10_000, 100); // reconnected after the test before
    await policyB.kill();
    try {
      await waitFor(async () => (await readyz(edge2.metricsPort)) === 503, 5_000, 100);
    } finally {
      await policyB.restart();
    }
    await waitFor(async () => (await readyz(edge2.metricsPort)) === 200, 10_000, 100);
  });
});
