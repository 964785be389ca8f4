// Soak: 10,000 concurrent relayed flows held for a minute. Each flow is a client that sends a real
// ClientHello, gets the upstream's first bytes back through the edge, and then sits idle; at the
// end of the hold every one must still carry bytes both ways. Records the edge's RSS per flow and
// its descriptors; then every flow is closed and audited.
//
// Descriptors: each flow costs the edge two (client and upstream side), so 10,000 flows need
// 20,000 in the edge alone, and the edge clamps edge.maxConnections to 45% of its open-files limit
// (a tenth of the budget kept for refusals). The edge runs SOAK_EDGE_WORKERS (default 2) cluster
// workers, each with its own limit; they accept for themselves, so the split is not exact: the
// busiest is allowed 30% over an even share. The harness raises its own open-files limit (prlimit:
// past the hard limit only with CAP_SYS_RESOURCE) to what that needs; the edge, the upstream and
// Redis inherit it. Where it cannot, the count is cut (and said so).
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { startRedis, waitFor } from '@portcullis/testing';
import { readAudit } from '../support/audit-log';
import { captureHello } from '../support/hello';
import { childPids, fdCount, percentile, sleep, socketStates } from './support/hostile';
import { startProcStack } from './support/proc-stack';
import type { ProcStack } from './support/proc-stack';
import { envNumber, mb, raiseOpenFiles, report, sampler, scaled, startHoldUpstream, treeFds, treeRss } from './support/soak';

const PROFILE = `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: soak-hold
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: hold
    action: allow
    fqdns: ["hold.test"]
    allowPrivate: ["127.0.0.0/8"]
`;
const REPLY = 'portcullis-soak-up\n';

interface Held {
  socket: Socket;
  got: string;
  openedMs: number;
}

/** One relayed flow: connect, send the hello, resolve once the upstream's reply came back. */
function openFlow(port: number, hello: Buffer): Promise<Held> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = connect({ port, host: '127.0.0.1', noDelay: true });
    const h: Held = { socket: s, got: '', openedMs: 0 };
    const onData = (d: Buffer): void => {
      h.got += d.toString('latin1');
      if (h.got.length >= REPLY.length) {
        h.openedMs = performance.now() - t0;
        s.off('data', onData);
        resolve(h);
      }
    };
    s.on('data', onData);
    s.on('error', (e) => reject(e));
    s.once('close', () => reject(new Error(`closed before the reply (${h.got.length} bytes)`)));
    s.once('connect', () => s.write(hello));
  });
}

describe('soak: concurrent relayed flows', () => {
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  const workers = envNumber('SOAK_EDGE_WORKERS', 2);
  const holdMs = envNumber('SOAK_HOLD_MS', 60_000);
  const wanted = scaled(10_000);
  // the busiest edge worker: 2 fds per flow within the 90% of its budget the clamp allows, past
  // ~100 of its own; this process and the upstream process: 1 per flow, past ~1,000 of their own
  const busiest = Math.min(1, 1.3 / workers);
  const limit = raiseOpenFiles(Math.max(wanted + 1_024, Math.ceil((2 * wanted * busiest) / 0.9) + 128));
  const N = Math.min(wanted, limit - 1_024, Math.floor(((limit - 128) * 0.9) / 2 / busiest));

  it(`${N} concurrent relayed flows held ${holdMs / 1000} s (ulimit -n ${limit}, ${workers} edge workers): RSS per flow, all alive at the end, all closed and audited`, async () => {
    if (N < wanted) console.log(`[soak] ulimit -n ${limit} allows ${N} of the ${wanted} flows asked for (raise the hard limit, or SOAK_EDGE_WORKERS)`);
    const upstream = await startHoldUpstream();
    cleanup.push(() => upstream.stop());
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const stack: ProcStack = await startProcStack({
      redis,
      profile: PROFILE,
      resolve: { 'hold.test': ['127.0.0.1'] },
      edges: [{ nodeId: 'edge-hold', upstreamPort: upstream.port, edge: { workers, maxConnectionsPerSource: 1_000_000, idleTimeoutMs: holdMs + 120_000, drainTimeoutMs: 1_000 } }],
    });
    cleanup.push(() => stack.stop());
    const edge = stack.edges[0] as ProcStack['edges'][number];
    const hello = await captureHello('hold.test');
    for (let i = 0; i < 20; i++) (await openFlow(edge.port, hello)).socket.destroy(); // warm-up
    await sleep(2_000);
    const rssBefore = treeRss(edge.pid);
    const fdsBefore = treeFds(edge.pid);

    const t0 = Date.now();
    const held: Held[] = [];
    const batch = 250;
    for (let i = 0; i < N; i += batch) held.push(...(await Promise.all(Array.from({ length: Math.min(batch, N - i) }, () => openFlow(edge.port, hello)))));
    const openMs = Date.now() - t0;
    const rssOpen = treeRss(edge.pid);
    const fdsHeld = treeFds(edge.pid);
    // how the workers (accepting for themselves) shared the flows: their descriptors
    const fdsPerWorker = childPids(edge.pid).map((p) => fdCount(p));
    const rss = sampler(() => treeRss(edge.pid), 1_000);
    await sleep(holdMs);
    const rssEnd = treeRss(edge.pid);
    const peak = rss.stop();

    // still alive, both ways: one byte up, its echo down, on every flow
    const t1 = Date.now();
    let alive = 0;
    for (let i = 0; i < held.length; i += 1_000) {
      const part = held.slice(i, i + 1_000);
      const r = await Promise.all(
        part.map(
          (h) =>
            new Promise<boolean>((resolve) => {
              const timer = setTimeout(() => resolve(false), 10_000);
              h.socket.once('data', (d: Buffer) => {
                clearTimeout(timer);
                resolve(d.toString() === 'p');
              });
              h.socket.write('p');
            }),
        ),
      );
      alive += r.filter(Boolean).length;
    }
    const echoMs = Date.now() - t1;

    // close them all (client first), then nothing of them may stay on the edge's ports
    for (const h of held) h.socket.end();
    await waitFor(async () => ((await socketStates([edge.port, upstream.port])).states['ESTAB'] ?? 0) === 0, 120_000, 1_000);
    await waitFor(() => readAudit(stack.auditLog).filter((l) => l.event === 'flow.end' && l.sni === 'hold.test').length >= N + 20, 180_000, 1_000);
    await sleep(5_000);
    const sockets = await socketStates([edge.port, upstream.port]);
    const rssAfter = treeRss(edge.pid);
    const fdsAfter = treeFds(edge.pid);
    const lines = readAudit(stack.auditLog).filter((l) => l.sni === 'hold.test');
    const opened = held.map((h) => h.openedMs);
    report('concurrent relayed flows', {
      flows: N,
      asked: wanted,
      ulimitN: limit,
      edgeWorkers: workers,
      holdMs,
      openAllMs: openMs,
      firstBytesMs: { p50: +percentile(opened, 50).toFixed(1), p99: +percentile(opened, 99).toFixed(1), max: +Math.max(...opened).toFixed(1) },
      rss: { before: mb(rssBefore), allOpen: mb(rssOpen), endOfHold: mb(rssEnd), peak: mb(peak), afterClose: mb(rssAfter), perFlowKiB: +((rssEnd - rssBefore) / N / 1024).toFixed(1), perFlowKiBAllOpen: +((rssOpen - rssBefore) / N / 1024).toFixed(1) },
      fds: { before: fdsBefore, held: fdsHeld, perWorker: fdsPerWorker, perFlow: +((fdsHeld - fdsBefore) / N).toFixed(2), after: fdsAfter },
      aliveAtEnd: alive,
      echoAllMs: echoMs,
      socketsAfter: sockets.states,
      auditLines: lines.length,
    });

    expect(held).toHaveLength(N);
    expect(alive).toBe(N);
    expect(fdsHeld - fdsBefore).toBeGreaterThanOrEqual(2 * N); // really held: two sockets per flow
    expect(fdsAfter - fdsBefore).toBeLessThanOrEqual(10 * workers);
    expect(sockets.states['CLOSE-WAIT'] ?? 0).toBe(0);
    expect(sockets.states['FIN-WAIT-2'] ?? 0).toBe(0);
    // every flow audited once, start and end, closed by the client
    const ends = lines.filter((l) => l.event === 'flow.end');
    expect(lines.filter((l) => l.event === 'flow.start')).toHaveLength(N + 20);
    expect(ends).toHaveLength(N + 20);
    expect(ends.filter((l) => l.closeReason === 'client-closed').length).toBeGreaterThanOrEqual(N);
    expect(new Set(lines.map((l) => `${l.flowId}|${l.event}`)).size).toBe(lines.length);
  });
});
