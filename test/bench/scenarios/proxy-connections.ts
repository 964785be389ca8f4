// 1. New connections: wrk requests/s with `Connection: close` (a new TCP connection and TLS
// handshake per request), direct vs portcullis edge (cached verdict) vs nginx stream + ssl_preread,
// interleaved; plus each proxy's own CPU milliseconds per 1,000 connections (/proc/PID/stat).
import type { BenchRow, BenchScenario } from '../types';
import { contextSwitches, cpuMs, cpuSplitMs } from '../support/procs';
import { profileNotes } from '../support/profile';
import { loadAverage, machine, pairedRatios, pick, targetRatioRow, valueRow } from '../support/report';
import { ROOT, settings, startRig } from '../support/rig';
import type { Candidate } from '../support/rig';
import { interleave, median, sig } from '../support/stats';
import { wrkVersion } from '../support/tools';
import { errorCount, runWrk, writeWrkScript } from '../support/wrk';

const THREADS = 2;
const CONNECTIONS = Number(process.env['BENCH_CONN_CONNECTIONS'] ?? 16);

interface Round {
  connPerS: number;
  proxyCpuMsPer1k: number;
  upstreamCpuMsPer1k: number;
  /** redis-server + policy-service CPU during the round: the edge's flow events and decisions */
  sideCpuMsPer1k: number;
  errors: number;
  p99Ms: number;
  /** the proxy's user and kernel CPU ms per 1,000 connections (the two parts of proxyCpuMsPer1k) */
  userMsPer1k: number;
  sysMsPer1k: number;
  /** the proxy's context switches per connection, all threads: it slept (voluntary) or was preempted */
  sleepsPerConn: number;
  preemptsPerConn: number;
}

const scenario: BenchScenario = {
  name: 'proxy-connections (issue 10 #1: new TLS connections/s and proxy CPU per connection)',
  async run() {
    const rows: BenchRow[] = [];
    const notes: string[] = [`machine: ${machine()}`];
    const rig = await startRig({ needWrk: true });
    try {
      notes.push(...rig.notes);
      const script = writeWrkScript(rig.dir);
      const cands = rig.candidates;
      const wrk = (c: Candidate, seconds: number): ReturnType<typeof runWrk> => runWrk({ script, port: rig.port(c), path: '/small', seconds, threads: THREADS, connections: CONNECTIONS, headers: ['Connection: close'] });
      for (const c of cands) await wrk(c, 2); // warm-up: JIT, verdict, upstream session cache
      const res = await interleave(cands, settings.rounds, async (c): Promise<Round> => {
        const pids = rig.proxyPids(c);
        const up = rig.upstream.pids();
        const p0 = cpuMs(pids);
        const split0 = cpuSplitMs(pids);
        const cs0 = contextSwitches(pids);
        const u0 = cpuMs(up);
        const side = [...(rig.redis?.pids() ?? []), ...(rig.policy?.pids() ?? [])];
        const s0 = cpuMs(side);
        const r = await wrk(c, settings.seconds);
        const k = r.requests / 1000;
        const split1 = cpuSplitMs(pids);
        const cs1 = contextSwitches(pids);
        return {
          userMsPer1k: (split1.user - split0.user) / k,
          sysMsPer1k: (split1.sys - split0.sys) / k,
          sleepsPerConn: (cs1.voluntary - cs0.voluntary) / r.requests,
          preemptsPerConn: (cs1.involuntary - cs0.involuntary) / r.requests,
 connPerS: r.requests / r.seconds, proxyCpuMsPer1k: pids.length ? (cpuMs(pids) - p0) / k : NaN, upstreamCpuMsPer1k: (cpuMs(up) - u0) / k, sideCpuMsPer1k: (cpuMs(side) - s0) / k, errors: errorCount(r), p99Ms: r.latencyUs.p99 / 1000 };
      });
      const base = pick(res.direct, (r) => r.connPerS);
      for (const c of cands) rows.push(valueRow(`${rig.label(c)}: new connections/s`, pick(res[c], (r) => r.connPerS), 'conn/s', { baseline: base }));
      for (const c of cands) if (c !== 'direct') rows.push(valueRow(`${rig.label(c)}: proxy CPU per 1,000 connections`, pick(res[c], (r) => r.proxyCpuMsPer1k), 'ms'));
      if (res.edge && res['nginx-stream']) {
        const e = res.edge;
        const n = res['nginx-stream'];
        rows.push(targetRatioRow('edge / nginx-stream new connections/s (same round)', pairedRatios(pick(e, (r) => r.connPerS), pick(n, (r) => r.connPerS)), '>=', 1.0));
        rows.push(targetRatioRow('edge / nginx-stream proxy CPU per connection (same round)', pairedRatios(pick(e, (r) => r.proxyCpuMsPer1k), pick(n, (r) => r.proxyCpuMsPer1k)), '<=', 1.5));
      } else notes.push(`no edge/nginx comparison: ${JSON.stringify(rig.skipped)}`);
      if (res.edge && res['nginx-audit']) {
        // the same comparison with nginx doing what the edge must on every connection (no target: explanation)
        rows.push(valueRow('edge / nginx-audit new connections/s (same round)', pairedRatios(pick(res.edge, (r) => r.connPerS), pick(res['nginx-audit'], (r) => r.connPerS)), '×'));
        rows.push(valueRow('edge / nginx-audit proxy CPU per connection (same round)', pairedRatios(pick(res.edge, (r) => r.proxyCpuMsPer1k), pick(res['nginx-audit'], (r) => r.proxyCpuMsPer1k)), '×'));
      }
      if (res.edge && res['edge-b']) rows.push(valueRow(`${rig.label('edge-b')} / ${rig.label('edge')} proxy CPU per connection (same round)`, pairedRatios(pick(res['edge-b'], (r) => r.proxyCpuMsPer1k), pick(res.edge, (r) => r.proxyCpuMsPer1k)), '×'));
      if (res.edge && res['node-bare']) rows.push(valueRow('edge / node-bare proxy CPU per connection (same round): the edge\'s own work over Node\'s floor', pairedRatios(pick(res.edge, (r) => r.proxyCpuMsPer1k), pick(res['node-bare'], (r) => r.proxyCpuMsPer1k)), '×'));
      for (const c of cands) {
        if (c === 'direct') continue;
        const m = (f: (r: Round) => number): number => sig(median(pick(res[c], f)));
        notes.push(`${rig.label(c)}: proxy CPU split ${m((r) => r.userMsPer1k)} ms user + ${m((r) => r.sysMsPer1k)} ms kernel per 1,000 connections; ${m((r) => r.sleepsPerConn)} sleeps (voluntary context switches) and ${m((r) => r.preemptsPerConn)} preemptions per connection, all threads`);
      }
      for (const c of cands) {
        const errs = pick(res[c], (r) => r.errors).reduce((a, b) => a + b, 0);
        notes.push(`${rig.label(c)}: upstream nginx CPU ${sig(median(pick(res[c], (r) => r.upstreamCpuMsPer1k)))} ms per 1,000 connections;${c.startsWith('edge') ? ` redis-server + policy-service CPU ${sig(median(pick(res[c], (r) => r.sideCpuMsPer1k)))} ms per 1,000 (flow events, not in the proxy figure);` : ''} wrk p99 ${sig(median(pick(res[c], (r) => r.p99Ms)))} ms; ${errs} wrk socket/status errors over all rounds`);
      }
      notes.push(
        `load: ${wrkVersion()} -t${THREADS} -c${CONNECTIONS} -H "Connection: close", ${settings.seconds} s per round, ${settings.rounds} rounds interleaved (${cands.join(' ')}, each round in its own order: every candidate follows every other equally often), GET /small (256 B); ratio = to direct in the same run; edge/nginx rows are medians of same-round ratios`,
        'wrk 4.1 negotiates TLS 1.2 and resumes its session on every reconnect (nginx session tickets), so each request is a new TCP connection + an abbreviated TLS handshake through the proxy',
        `proxy CPU = utime+stime of the proxy process(es) (/proc/PID/stat, 10 ms ticks) over the round / connections; the proxies, wrk and the upstream share the machine's cores; load average at the end ${loadAverage()}`,
      );
    } finally {
      await rig.stop();
      notes.push(...profileNotes(rig.edgeProfiles(), ROOT));
    }
    return { rows, notes };
  },
};

export default scenario;
