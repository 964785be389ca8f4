// 3. Latency: p50/p99/p99.9 of small requests at a fixed moderate rate over keep-alive TLS
// connections, direct vs portcullis edge vs nginx stream + ssl_preread, interleaved. wrk2 is not
// in Debian and wrk is closed-loop, so the load comes from our own open-loop Node client
// (support/tls-load.ts), run as a separate process.
// BENCH_LATENCY_STORM=N: during each measured round, wrk also opens new connections through the
// same candidate (N connections, `Connection: close`, closed-loop): the latency of established
// flows while the proxy accepts, decides and audits new ones.
import type { BenchRow, BenchScenario } from '../types';
import { runRate } from '../support/loadgen';
import { errorCount, runWrk, writeWrkScript } from '../support/wrk';
import { cpuMs } from '../support/procs';
import { profileNotes } from '../support/profile';
import { loadAverage, machine, pairedRatios, pick, targetRatioRow, valueRow } from '../support/report';
import { ROOT, settings, startRig } from '../support/rig';
import { interleave, median, sig } from '../support/stats';

const RATE = Number(process.env['BENCH_RATE'] ?? 1000);
const CONNECTIONS = Number(process.env['BENCH_LATENCY_CONNECTIONS'] ?? 8);
const STORM = Number(process.env['BENCH_LATENCY_STORM'] ?? 0);

interface Round {
  p50Us: number;
  p99Us: number;
  p999Us: number;
  coP99Us: number;
  achieved: number;
  errors: number;
  proxyCpuPct: number;
  /** new connections/s the storm got through (BENCH_LATENCY_STORM) */
  stormRate: number;
}

const scenario: BenchScenario = {
  name: `proxy-latency (issue 10 #3: small-request latency at a fixed ${RATE} req/s${STORM ? `, with a storm of new connections (${STORM} wrk connections)` : ''})`,
  async run() {
    const rows: BenchRow[] = [];
    const notes: string[] = [`machine: ${machine()}`];
    const rig = await startRig();
    try {
      notes.push(...rig.notes);
      const cands = rig.candidates;
      const seconds = Math.max(3, settings.seconds);
      const script = STORM ? writeWrkScript(rig.dir) : '';
      for (const c of cands) await runRate({ port: rig.port(c), path: '/small', rate: RATE, seconds: 2, connections: CONNECTIONS }); // warm-up
      const res = await interleave(cands, settings.rounds, async (c): Promise<Round> => {
        const pids = rig.proxyPids(c);
        const p0 = cpuMs(pids);
        const t0 = Date.now();
        // the storm runs a second longer than the measurement, which starts once it is under way
        const storm = STORM ? runWrk({ script, port: rig.port(c), path: '/small', seconds: seconds + 1, threads: 1, connections: STORM, headers: ['Connection: close'] }) : undefined;
        if (storm) await new Promise((r) => setTimeout(r, 500));
        const r = await runRate({ port: rig.port(c), path: '/small', rate: RATE, seconds, connections: CONNECTIONS });
        const cpu = pids.length ? ((cpuMs(pids) - p0) / (Date.now() - t0)) * 100 : NaN;
        const w = storm ? await storm : undefined;
        return { p50Us: r.p50Us, p99Us: r.p99Us, p999Us: r.p999Us, coP99Us: r.coP99Us, achieved: r.achievedRate, errors: r.errors + (w ? errorCount(w) : 0), proxyCpuPct: cpu, stormRate: w ? w.requests / w.seconds : 0 };
      });
      for (const [k, label] of [
        ['p50Us', 'p50'],
        ['p99Us', 'p99'],
        ['p999Us', 'p99.9'],
      ] as const) {
        const base = pick(res.direct, (r) => r[k]);
        for (const c of cands) rows.push(valueRow(`${rig.label(c)}: latency ${label}`, pick(res[c], (r) => r[k]), 'µs', { baseline: base }));
      }
      if (res.edge && res['nginx-stream']) {
        rows.push(targetRatioRow('edge / nginx-stream p99 latency (same round)', pairedRatios(pick(res.edge, (r) => r.p99Us), pick(res['nginx-stream'], (r) => r.p99Us)), '<=', 1.1));
        rows.push(valueRow('edge / nginx-stream p50 latency (same round)', pairedRatios(pick(res.edge, (r) => r.p50Us), pick(res['nginx-stream'], (r) => r.p50Us)), '×'));
      } else notes.push(`no edge/nginx comparison: ${JSON.stringify(rig.skipped)}`);
      for (const c of cands) {
        notes.push(
          `${rig.label(c)}: achieved ${sig(median(pick(res[c], (r) => r.achieved)))} req/s, ${pick(res[c], (r) => r.errors).reduce((a, b) => a + b, 0)} errors, p99 from the ideal send instant ${sig(median(pick(res[c], (r) => r.coP99Us)))} µs${c === 'direct' ? '' : `, proxy CPU ${sig(median(pick(res[c], (r) => r.proxyCpuPct)))}% of a core`}${STORM ? `, storm ${sig(median(pick(res[c], (r) => r.stormRate)))} new connections/s` : ''}`,
        );
      }
      notes.push(
        `load: our open-loop Node TLS client (test/bench/support/tls-load.ts, a separate process), ${RATE} req/s over ${CONNECTIONS} keep-alive TLS connections, GET /small (256 B), ${seconds} s per round, ${settings.rounds} rounds interleaved; latency from the scheduler tick that found the request due (queueing for a free connection included) to its last response byte; ratio = to direct in the same run`,
        `the client's own event-loop overhead (~tens of µs) is in every figure alike; load average at the end ${loadAverage()}`,
      );
    } finally {
      await rig.stop();
      notes.push(...profileNotes(rig.edgeProfiles(), ROOT));
    }
    return { rows, notes };
  },
};

export default scenario;
