// 2. Bulk: MB/s for a 64 MiB body over keep-alive (wrk, one connection by default), direct vs
// portcullis edge vs nginx stream + ssl_preread, interleaved; plus each proxy's CPU ms per GiB relayed.
import type { BenchRow, BenchScenario } from '../types';
import { cpuMs } from '../support/procs';
import { profileNotes } from '../support/profile';
import { loadAverage, machine, pairedRatios, pick, targetRatioRow, valueRow } from '../support/report';
import { ROOT, settings, startRig } from '../support/rig';
import type { Candidate } from '../support/rig';
import { interleave, median, sig } from '../support/stats';
import { wrkVersion } from '../support/tools';
import { errorCount, runWrk, writeWrkScript } from '../support/wrk';

const CONNECTIONS = Number(process.env['BENCH_BULK_CONNECTIONS'] ?? 1);
const GIB = 1024 ** 3;

interface Round {
  mbPerS: number;
  proxyCpuMsPerGiB: number;
  upstreamCpuMsPerGiB: number;
  /** redis-server + policy-service CPU during the round */
  sideCpuMsPerGiB: number;
  bodies: number;
  errors: number;
}

const scenario: BenchScenario = {
  name: 'proxy-bulk (issue 10 #2: 64 MiB bodies over keep-alive, MB/s and proxy CPU per GiB)',
  async run() {
    const rows: BenchRow[] = [];
    const notes: string[] = [`machine: ${machine()}`];
    const rig = await startRig({ needWrk: true });
    try {
      notes.push(...rig.notes);
      const script = writeWrkScript(rig.dir);
      const cands = rig.candidates;
      const seconds = Math.max(3, settings.seconds);
      const wrk = (c: Candidate, s: number): ReturnType<typeof runWrk> => runWrk({ script, port: rig.port(c), path: '/big', seconds: s, threads: CONNECTIONS, connections: CONNECTIONS, timeoutS: 60 });
      for (const c of cands) await wrk(c, 2); // warm-up
      const res = await interleave(cands, settings.rounds, async (c): Promise<Round> => {
        const pids = rig.proxyPids(c);
        const up = rig.upstream.pids();
        const p0 = cpuMs(pids);
        const u0 = cpuMs(up);
        const side = [...(rig.redis?.pids() ?? []), ...(rig.policy?.pids() ?? [])];
        const s0 = cpuMs(side);
        const r = await wrk(c, seconds);
        const gib = r.bytes / GIB;
        return { mbPerS: r.bytes / r.seconds / 1e6, proxyCpuMsPerGiB: pids.length ? (cpuMs(pids) - p0) / gib : NaN, upstreamCpuMsPerGiB: (cpuMs(up) - u0) / gib, sideCpuMsPerGiB: (cpuMs(side) - s0) / gib, bodies: r.requests, errors: errorCount(r) };
      });
      const base = pick(res.direct, (r) => r.mbPerS);
      for (const c of cands) rows.push(valueRow(`${rig.label(c)}: bulk throughput`, pick(res[c], (r) => r.mbPerS), 'MB/s', { baseline: base }));
      for (const c of cands) if (c !== 'direct') rows.push(valueRow(`${rig.label(c)}: proxy CPU per GiB relayed`, pick(res[c], (r) => r.proxyCpuMsPerGiB), 'ms'));
      if (res.edge && res['nginx-stream']) {
        const e = res.edge;
        const n = res['nginx-stream'];
        rows.push(targetRatioRow('edge / nginx-stream bulk MB/s (same round)', pairedRatios(pick(e, (r) => r.mbPerS), pick(n, (r) => r.mbPerS)), '>=', 1.0));
        rows.push(targetRatioRow('edge / nginx-stream proxy CPU per GiB (same round)', pairedRatios(pick(e, (r) => r.proxyCpuMsPerGiB), pick(n, (r) => r.proxyCpuMsPerGiB)), '<=', 1.2));
      } else notes.push(`no edge/nginx comparison: ${JSON.stringify(rig.skipped)}`);
      if (res.edge && res['nginx-audit']) rows.push(valueRow('edge / nginx-audit bulk MB/s (same round)', pairedRatios(pick(res.edge, (r) => r.mbPerS), pick(res['nginx-audit'], (r) => r.mbPerS)), '×'));
      if (res.edge && res['edge-b']) rows.push(valueRow(`${rig.label('edge-b')} / ${rig.label('edge')} proxy CPU per GiB (same round)`, pairedRatios(pick(res['edge-b'], (r) => r.proxyCpuMsPerGiB), pick(res.edge, (r) => r.proxyCpuMsPerGiB)), '×'));
      for (const c of cands) {
        notes.push(`${rig.label(c)}: upstream nginx CPU ${sig(median(pick(res[c], (r) => r.upstreamCpuMsPerGiB)))} ms per GiB;${c.startsWith('edge') ? ` redis-server + policy-service ${sig(median(pick(res[c], (r) => r.sideCpuMsPerGiB)))} ms per GiB;` : ''} ${pick(res[c], (r) => r.bodies).join('/')} bodies per round; ${pick(res[c], (r) => r.errors).reduce((a, b) => a + b, 0)} wrk errors`);
      }
      notes.push(
        `load: ${wrkVersion()} -t${CONNECTIONS} -c${CONNECTIONS} keep-alive GET /big (64 MiB, random bytes), ${seconds} s per round, ${settings.rounds} rounds interleaved; MB = 10^6 bytes of HTTP response (headers + body) read by wrk; ratio = to direct in the same run`,
        `proxy CPU = utime+stime of the proxy process(es) over the round / GiB read by wrk; load average at the end ${loadAverage()}`,
      );
    } finally {
      await rig.stop();
      notes.push(...profileNotes(rig.edgeProfiles(), ROOT));
    }
    return { rows, notes };
  },
};

export default scenario;
