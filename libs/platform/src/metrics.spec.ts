import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { answerWorkerQueries, askWorker, mergePrometheusText, retireCounters } from './metrics';
import type { IpcPeer, WorkerQuery } from './metrics';

const worker1 = `# HELP portcullis_flows_total Flows decided
# TYPE portcullis_flows_total counter
portcullis_flows_total{listener="tls",verdict="allow",reason="rule"} 3
portcullis_flows_total{listener="tls",verdict="deny",reason="default"} 1
# HELP portcullis_active_flows Open client connections
# TYPE portcullis_active_flows gauge
portcullis_active_flows 2
# HELP portcullis_policy_version Policy version this node enforces
# TYPE portcullis_policy_version gauge
portcullis_policy_version{node="edge-1"} 7
# HELP portcullis_decide_duration_seconds Time to a verdict
# TYPE portcullis_decide_duration_seconds histogram
portcullis_decide_duration_seconds_count{source="l1"} 3
portcullis_decide_duration_seconds_sum{source="l1"} 0.5
portcullis_decide_duration_seconds_bucket{source="l1",le="0.001"} 2
portcullis_decide_duration_seconds_bucket{source="l1",le="+Inf"} 3
# HELP target_info Target metadata
# TYPE target_info gauge
target_info{service_name="edge-proxy"} 1
`;
const worker2 = `# HELP portcullis_flows_total Flows decided
# TYPE portcullis_flows_total counter
portcullis_flows_total{reason="rule",listener="tls",verdict="allow"} 4
portcullis_flows_total{listener="tls",verdict="allow",reason="fail-open"} 1
# HELP portcullis_active_flows Open client connections
# TYPE portcullis_active_flows gauge
portcullis_active_flows 5
# HELP portcullis_policy_version Policy version this node enforces
# TYPE portcullis_policy_version gauge
portcullis_policy_version{node="edge-1"} 8
# HELP portcullis_decide_duration_seconds Time to a verdict
# TYPE portcullis_decide_duration_seconds histogram
portcullis_decide_duration_seconds_count{source="l1"} 1
portcullis_decide_duration_seconds_sum{source="l1"} 0.25
portcullis_decide_duration_seconds_bucket{source="l1",le="0.001"} 0
portcullis_decide_duration_seconds_bucket{source="l1",le="+Inf"} 1
# HELP target_info Target metadata
# TYPE target_info gauge
target_info{service_name="edge-proxy"} 1
`;

function samples(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  return out;
}

describe('mergePrometheusText', () => {
  it('adds up counters, histograms and amount gauges per label set (in any label order); versions and info take the maximum', () => {
    const merged = mergePrometheusText([worker1, worker2]);
    expect(samples(merged)).toEqual({
      'portcullis_flows_total{listener="tls",verdict="allow",reason="rule"}': 7,
      'portcullis_flows_total{listener="tls",verdict="deny",reason="default"}': 1,
      'portcullis_flows_total{listener="tls",verdict="allow",reason="fail-open"}': 1,
      portcullis_active_flows: 7,
      'portcullis_policy_version{node="edge-1"}': 8,
      'portcullis_decide_duration_seconds_count{source="l1"}': 4,
      'portcullis_decide_duration_seconds_sum{source="l1"}': 0.75,
      'portcullis_decide_duration_seconds_bucket{source="l1",le="0.001"}': 2,
      'portcullis_decide_duration_seconds_bucket{source="l1",le="+Inf"}': 4,
      'target_info{service_name="edge-proxy"}': 1,
    });
    // one HELP and TYPE per family, samples under it
    expect(merged.match(/# TYPE portcullis_flows_total counter/g)).toHaveLength(1);
    expect(merged.indexOf('# TYPE portcullis_decide_duration_seconds histogram')).toBeLessThan(merged.indexOf('portcullis_decide_duration_seconds_count'));
  });

  it('keeps a single text as it is, and ignores empty ones', () => {
    expect(samples(mergePrometheusText(['', worker1, '']))).toEqual(samples(worker1));
    expect(mergePrometheusText([])).toBe('');
  });

  it('retired counters keep the totals from going down when a worker exits; its gauges go', () => {
    const retired = retireCounters('', worker1);
    expect(retired).not.toContain('portcullis_active_flows');
    expect(retired).not.toContain('portcullis_policy_version');
    const after = samples(mergePrometheusText([retired, worker2]));
    expect(after['portcullis_flows_total{listener="tls",verdict="allow",reason="rule"}']).toBe(7);
    expect(after['portcullis_decide_duration_seconds_count{source="l1"}']).toBe(4);
    expect(after['portcullis_active_flows']).toBe(5);
  });
});

/** A fake cluster worker on an in-memory channel: `answer` decides whether (and how late) it replies. */
function fakeWorker(answer: (q: WorkerQuery, reply: (m: unknown) => void) => void): IpcPeer & { asked: number } {
  const ee = new EventEmitter();
  const w = {
    asked: 0,
    send(message: WorkerQuery, callback?: (error: Error | null) => void): boolean {
      w.asked++;
      answer(message, (m) => ee.emit('message', m));
      callback?.(null);
      return true;
    },
    on: (event: 'message', l: (m: unknown) => void) => ee.on(event, l),
    off: (event: 'message', l: (m: unknown) => void) => ee.off(event, l),
  };
  return w;
}

describe('askWorker', () => {
  it('a worker that never answers does not hold up the scrape beyond the timeout', async () => {
    const silent = fakeWorker(() => undefined);
    const prompt = fakeWorker((q, reply) => setImmediate(() => reply({ portcullis: 'answer', id: q.id, ready: true, metrics: worker1 })));
    const t0 = Date.now();
    const [a, b] = await Promise.all([askWorker(silent, { metrics: true, timeoutMs: 200 }), askWorker(prompt, { metrics: true, timeoutMs: 200 })]);
    const ms = Date.now() - t0;
    expect(a).toBeUndefined();
    expect(b?.metrics).toBe(worker1);
    expect(ms).toBeGreaterThanOrEqual(190);
    expect(ms).toBeLessThan(1_000);
  });

  it('ignores answers to other questions and late answers; a send that fails answers undefined at once', async () => {
    const late: { id: number; reply: (m: unknown) => void }[] = [];
    const w = fakeWorker((q, reply) => {
      reply({ portcullis: 'answer', id: q.id + 1000, ready: true });
      late.push({ id: q.id, reply });
    });
    expect(await askWorker(w, { metrics: false, timeoutMs: 50 })).toBeUndefined();
    late[0]?.reply({ portcullis: 'answer', id: late[0].id, ready: true }); // after the timeout: nobody listens
    const broken: IpcPeer = {
      send: (_m, cb) => {
        cb?.(Object.assign(new Error('channel closed'), { code: 'ERR_IPC_CHANNEL_CLOSED' }));
        return false;
      },
      on: () => undefined,
      off: () => undefined,
    };
    const t0 = Date.now();
    expect(await askWorker(broken, { metrics: true, timeoutMs: 5_000 })).toBeUndefined();
    expect(Date.now() - t0).toBeLessThan(1_000);
  });

  it('answerWorkerQueries answers readiness and metrics on the channel', async () => {
    const channel = new EventEmitter();
    const sent: unknown[] = [];
    const proc = Object.assign(channel, { connected: true, send: (m: unknown, _h?: unknown, _o?: unknown, cb?: () => void) => (sent.push(m), cb?.(), true) }) as unknown as NodeJS.Process;
    const stop = answerWorkerQueries({ ready: () => true, collect: async () => worker2 }, proc);
    channel.emit('message', { portcullis: 'query', id: 41, metrics: true });
    channel.emit('message', { portcullis: 'query', id: 42, metrics: false });
    channel.emit('message', 'unrelated');
    await new Promise((r) => setTimeout(r, 20));
    stop();
    expect([...sent].sort((a, b) => (a as { id: number }).id - (b as { id: number }).id)).toEqual([
      { portcullis: 'answer', id: 41, ready: true, metrics: worker2 },
      { portcullis: 'answer', id: 42, ready: true },
    ]);
  });
});
