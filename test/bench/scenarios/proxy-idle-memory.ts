// 4. Memory: RSS per idle relayed flow with 5,000 idle TLS flows open through the proxy
// (portcullis edge vs nginx stream + ssl_preread, interleaved; each round on a freshly started proxy).
// A flow = TCP + TLS handshake + one small request and response, then idle.
import type { BenchRow, BenchScenario } from '../types';
import { heapDeltaNotes, takeHeapSnapshot } from '../support/heap';
import { openIdleFlows } from '../support/loadgen';
import { fdCount, noFileLimits, rssKiB, sleep } from '../support/procs';
import { profileNotes } from '../support/profile';
import { loadAverage, machine, pairedRatios, pick, targetValueRow, valueRow } from '../support/report';
import { ROOT, settings, startRig } from '../support/rig';
import type { Candidate, Rig } from '../support/rig';
import { interleave, median, sig } from '../support/stats';

const FLOWS = Number(process.env['BENCH_IDLE_FLOWS'] ?? 5000);
const CONCURRENCY = 64;
const SETTLE_MS = 2_000;

interface Round {
  kibPerFlow: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  opened: number;
  failed: number;
  proxyFds: number;
  openMs: number;
}

async function restart(rig: Rig, c: Candidate): Promise<void> {
  if (c === 'edge') await rig.restartEdge();
  else if (c === 'edge-b') await rig.restartEdge('b');
  else if (c === 'node-bare') await rig.restartBare();
  else if (c === 'nginx-stream') await rig.restartNginxStream();
  else if (c === 'nginx-audit') await rig.restartNginxAudit();
}

const scenario: BenchScenario = {
  name: `proxy-idle-memory (issue 10 #4: RSS per idle relayed flow, ${FLOWS} idle TLS flows)`,
  async run() {
    const rows: BenchRow[] = [];
    const notes: string[] = [`machine: ${machine()}`];
    const lim = noFileLimits();
    notes.push(`ulimit -n here: soft ${lim.soft}, hard ${lim.hard}; a proxy needs ~2 fds per flow, the client 1`);
    const rig = await startRig({ noFile: FLOWS });
    try {
      notes.push(...rig.notes);
      const cands = rig.candidates.filter((c) => c !== 'direct');
      const clientNoFile = Math.min(lim.hard, FLOWS + 1024);
      const res = await interleave(cands, settings.rounds, async (c): Promise<Round> => {
        await restart(rig, c); // a fresh process each round: the delta is not hidden by memory kept from the last round
        // a little traffic first, so code paths, pools and the verdict are warm before the baseline
        const warm = await openIdleFlows({ port: rig.port(c), path: '/small', flows: 50, concurrency: 10 });
        await warm.close();
        await sleep(SETTLE_MS);
        const pids = rig.proxyPids(c);
        const before = rssKiB(pids);
        const flows = await openIdleFlows({ port: rig.port(c), path: '/small', flows: FLOWS, concurrency: CONCURRENCY, noFile: clientNoFile });
        try {
          await sleep(SETTLE_MS);
          const after = rssKiB(pids);
          return { kibPerFlow: (after - before) / Math.max(1, flows.alive), rssBeforeMiB: before / 1024, rssAfterMiB: after / 1024, opened: flows.alive, failed: flows.failed, proxyFds: fdCount(pids), openMs: flows.ms };
        } finally {
          await flows.close();
        }
      });
      const base = res['nginx-stream'] ? pick(res['nginx-stream'], (r) => r.kibPerFlow) : undefined;
      for (const c of cands) {
        const vals = pick(res[c], (r) => r.kibPerFlow);
        rows.push(c === 'edge' ? targetValueRow(`${rig.label(c)}: RSS per idle relayed flow`, vals, 'KiB', '<=', 8, base ? { ratio: median(vals) / median(base) } : {}) : valueRow(`${rig.label(c)}: RSS per idle relayed flow`, vals, 'KiB', base ? { baseline: base } : {}));
      }
      if (res.edge && res['nginx-stream']) rows.push(valueRow('edge / nginx-stream RSS per flow (same round)', pairedRatios(pick(res.edge, (r) => r.kibPerFlow), pick(res['nginx-stream'], (r) => r.kibPerFlow)), '×'));
      for (const c of cands) {
        const r = res[c];
        notes.push(
          `${rig.label(c)}: RSS ${sig(median(pick(r, (x) => x.rssBeforeMiB)))} → ${sig(median(pick(r, (x) => x.rssAfterMiB)))} MiB; flows open ${pick(r, (x) => x.opened).join('/')} (failed ${pick(r, (x) => x.failed).join('/')}); proxy fds ${pick(r, (x) => x.proxyFds).join('/')}; opening took ${pick(r, (x) => Math.round(x.openMs)).join('/')} ms`,
        );
      }
      if (process.env['BENCH_HEAP'] === '1' && rig.edge) {
        // an extra, unmeasured pass: where the edge's per-flow heap goes (snapshots inflate RSS)
        await rig.restartEdge('a', ['--heapsnapshot-signal=SIGUSR2']);
        const edge = rig.edge;
        const warm = await openIdleFlows({ port: edge.port, path: '/small', flows: 50, concurrency: 10 });
        await warm.close();
        await sleep(SETTLE_MS);
        const s0 = await takeHeapSnapshot(rig.dir, edge.proc.pid);
        const flows = await openIdleFlows({ port: edge.port, path: '/small', flows: FLOWS, concurrency: CONCURRENCY, noFile: clientNoFile });
        try {
          await sleep(SETTLE_MS);
          const s1 = await takeHeapSnapshot(rig.dir, edge.proc.pid);
          notes.push(...heapDeltaNotes(s0, s1, flows.alive));
        } finally {
          await flows.close();
        }
      }
      notes.push(
        `method: per round and candidate a fresh proxy process, 50 warm-up flows opened and closed, ${SETTLE_MS} ms settle, RSS (VmRSS, /proc/PID/status; nginx: master + worker), then ${FLOWS} flows opened (${CONCURRENCY} handshakes at a time) by a separate Node client (TLS handshake + GET /small each, then idle), ${SETTLE_MS} ms settle, RSS again; KiB per flow = ΔRSS / flows alive. The edge's V8 heap is not forced to collect first, so garbage from the handshakes counts; ratio = to nginx-stream in the same run; load average at the end ${loadAverage()}`,
      );
    } finally {
      await rig.stop();
      notes.push(...profileNotes(rig.edgeProfiles(), ROOT));
    }
    return { rows, notes };
  },
};

export default scenario;
