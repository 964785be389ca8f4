// One trace per flow across edge, policy service and audit service (separate processes exporting
// OTLP to a receiver run by the test), and Prometheus metrics that move as flows happen.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, makeCerts, startRedis, startTlsUpstream, waitFor } from '@portcullis/testing';
import type { TestCerts, TestRedis, TlsUpstream } from '@portcullis/testing';
import { waitForAudit } from '../support/audit-log';
import { descends, startOtlpReceiver } from '../support/otlp';
import { startApp, waitForOutput, writeConfig } from '../support/processes';
import type { Proc } from '../support/processes';
import { nodeTls } from '../support/tls-client';

const PROFILE = `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: otel
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: traced
    action: allow
    fqdns: ["traced.test"]
    allowPrivate: ["127.0.0.0/8"]
`;

async function scrape(port: number): Promise<Map<string, { labels?: Record<string, string>; value?: string; count?: string; buckets?: Record<string, string> }[]>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  return new Map(parsePrometheus(await res.text()).map((f) => [f.name, f.metrics]));
}

function value(m: Map<string, { labels?: Record<string, string>; value?: string; count?: string; buckets?: Record<string, string> }[]>, name: string, labels: Record<string, string> = {}): number {
  const samples = (m.get(name) ?? []).filter((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  // histograms: the observation count is the +Inf bucket
  return samples.reduce((a, s) => a + Number(s.value ?? s.count ?? s.buckets?.['+Inf'] ?? 0), 0);
}

describe('observability across processes', () => {
  let dir: string;
  let redis: TestRedis;
  let certs: TestCerts;
  let upstream: TlsUpstream;
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let edgePort: number;
  let quietPort: number;
  let metricsPort: number;
  let auditLog: string;
  let edgeProc: Proc;
  const procs: Proc[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-otel-'));
    redis = await startRedis();
    certs = makeCerts(['traced.test', 'refused.test']);
    upstream = await startTlsUpstream(certs);
    otlp = await startOtlpReceiver();
    [edgePort, metricsPort, quietPort] = [await freePort(), await freePort(), await freePort()];
    const policyPort = await freePort();
    auditLog = join(dir, 'audit.log');
    writeFileSync(join(dir, 'profile.yaml'), PROFILE);
    const base = {
      redis: { url: redis.url },
      policy: { listen: `127.0.0.1:${policyPort}`, profile: join(dir, 'profile.yaml'), adminToken: 'otel-token-1' },
      edge: { nodeId: 'edge-otel', policyService: `127.0.0.1:${policyPort}`, listeners: [{ name: 'tls', mode: 'sni', listen: `127.0.0.1:${edgePort}`, upstreamPort: upstream.port }], resolve: { 'traced.test': ['127.0.0.1'], 'refused.test': ['127.0.0.1'] }, spoolDir: join(dir, 'spool') },
      audit: { log: auditLog },
    };
    const env = (service: string) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_SERVICE_NAME: service, OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_TRACES_SAMPLER: 'parentbased_always_on' });
    const edgeConfig = writeConfig(dir, 'edge.yaml', { ...base, metrics: { listen: `127.0.0.1:${metricsPort}` } });
    const config = writeConfig(dir, 'c.yaml', base);
    // a second edge whose sampler keeps nothing
    const quietConfig = writeConfig(dir, 'quiet.yaml', { ...base, edge: { ...base.edge, nodeId: 'edge-quiet', listeners: [{ name: 'tls', mode: 'sni', listen: `127.0.0.1:${quietPort}`, upstreamPort: upstream.port }], spoolDir: join(dir, 'spool-quiet') } });
    const policy = startApp('policy-service', ['--config', config], env('policy-service'));
    procs.push(policy);
    await waitForOutput(policy, 'policy-service listening');
    const audit = startApp('audit-service', ['--config', config], env('audit-service'));
    const edge = startApp('edge-proxy', ['--config', edgeConfig], env('edge-proxy'));
    edgeProc = edge;
    const quiet = startApp('edge-proxy', ['--config', quietConfig], { ...env('edge-quiet'), OTEL_TRACES_SAMPLER: 'always_off' });
    procs.push(audit, edge, quiet);
    await waitForOutput(audit, 'audit-service consuming');
    await waitForOutput(edge, 'edge listening');
    await waitForOutput(quiet, 'edge listening');
  });

  afterAll(async () => {
    for (const p of procs.reverse()) await p.stop();
    await upstream?.close();
    await otlp?.close();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves /healthz and /readyz beside /metrics', async () => {
    expect((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(200);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status === 200, 5_000);
  });

  it('metrics move as flows happen', async () => {
    const before = await scrape(metricsPort);
    expect((await nodeTls(edgePort, 'traced.test', certs.ca)).body).toBe('hello from upstream traced.test\n');
    expect((await nodeTls(edgePort, 'refused.test', certs.ca)).errorCode).toBe('ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    await waitForAudit(auditLog, (l) => l.event === 'flow.end', 2);
    const after = await scrape(metricsPort);
    const delta = (name: string, labels?: Record<string, string>) => value(after, name, labels) - value(before, name, labels);
    expect(delta('portcullis_flows_total', { verdict: 'allow', reason: 'rule', listener: 'tls' })).toBe(1);
    expect(delta('portcullis_flows_total', { verdict: 'deny', reason: 'default' })).toBe(1);
    expect(delta('portcullis_sniff_total', { outcome: 'sni_found' })).toBe(2);
    expect(delta('portcullis_decide_duration_seconds')).toBe(2);
    expect(delta('portcullis_bytes_total', { direction: 'up' })).toBeGreaterThan(300);
    expect(delta('portcullis_bytes_total', { direction: 'down' })).toBeGreaterThan(300);
    expect(value(after, 'portcullis_policy_version', { node: 'edge-otel' })).toBe(1);
    expect(after.has('portcullis_active_flows')).toBe(true);
    expect(after.has('portcullis_audit_queue_depth')).toBe(true);
  });

  it('one trace per flow: edge stages, the policy decision and its Redis call, and a link from the audit write', async () => {
    const lines = await waitForAudit(auditLog, (l) => l.event === 'flow.start', 2);
    const flows = lines.map((l) => ({ sni: l.sni, traceparent: String(l['traceparent'] ?? '') }));
    for (const f of flows) expect(f.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const traceIds = flows.map((f) => f.traceparent.split('-')[1] as string);
    expect(new Set(traceIds).size).toBe(2);

    await waitFor(() => traceIds.every((t) => ['policy.decide', 'edge.flow'].every((n) => otlp.spans.some((s) => s.traceId === t && s.name === n))) && traceIds.every((t) => otlp.spans.some((s) => s.name === 'audit.write' && s.links.some((l) => l.traceId === t))), 15_000, 100);
    for (const [i, traceId] of traceIds.entries()) {
      const spans = otlp.spans.filter((s) => s.traceId === traceId);
      const root = spans.find((s) => s.name === 'edge.flow');
      expect(root?.service).toBe('edge-proxy');
      expect(root?.attributes['verdict'] === undefined).toBe(false);
      for (const stage of ['edge.sniff', 'edge.decide']) expect(spans.find((s) => s.name === stage)?.parentSpanId).toBe(root?.spanId);
      const decide = spans.find((s) => s.name === 'edge.decide');
      expect(decide?.attributes).toMatchObject({ sni: flows[i]?.sni, verdict: flows[i]?.sni === 'traced.test' ? 'allow' : 'deny' });
      const policy = spans.find((s) => s.name === 'policy.decide');
      expect(policy?.service).toBe('policy-service');
      expect(descends(spans, policy!, decide!)).toBe(true);
      const redisSpan = spans.find((s) => s.service === 'policy-service' && /^(get|set)$/i.test(s.name));
      expect(redisSpan).toBeDefined();
      expect(descends(spans, redisSpan!, decide!)).toBe(true);
      const audited = otlp.spans.filter((s) => s.name === 'audit.write' && s.service === 'audit-service').flatMap((s) => s.links);
      expect(audited.some((l) => l.traceId === traceId && l.spanId === root?.spanId)).toBe(true);
    }
    const allowed = otlp.spans.find((s) => s.traceId === traceIds[flows.findIndex((f) => f.sni === 'traced.test')] && s.name === 'edge.flow');
    expect(allowed?.attributes).toMatchObject({ sni: 'traced.test', verdict: 'allow', ruleId: 'traced' });
    expect(otlp.spans.some((s) => s.traceId === allowed?.traceId && s.name === 'edge.connect')).toBe(true);
    expect(otlp.spans.some((s) => s.traceId === allowed?.traceId && s.name === 'edge.relay')).toBe(true);
  });

  it('a flow the sampler drops records no span anywhere and carries no traceparent', async () => {
    expect((await nodeTls(quietPort, 'traced.test', certs.ca)).body).toBe('hello from upstream traced.test\n');
    const lines = await waitForAudit(auditLog, (l) => l.nodeId === 'edge-quiet', 2);
    for (const l of lines) expect(l['traceparent']).toBeUndefined();
    await new Promise((r) => setTimeout(r, 500)); // a batch export would have arrived by now
    expect(otlp.spans.filter((s) => s.service === 'edge-quiet')).toEqual([]);
    const flowId = lines[0]?.flowId;
    expect(otlp.spans.filter((s) => s.name === 'policy.decide' && s.attributes['flowId'] === flowId)).toEqual([]);
  });

  it('the canonical flow.end line is on the edge\'s stdout within a fraction of a second of the close, with the audit record\'s fields in their order', async () => {
    const flowLines = (): Record<string, unknown>[] =>
      edgeProc.output
        .join('')
        .split('\n')
        .filter((l) => l.includes('"msg":"flow.end"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const seen = new Set(flowLines().map((l) => l['flowId']));
    expect((await nodeTls(edgePort, 'traced.test', certs.ca)).body).toBe('hello from upstream traced.test\n');
    const closedAt = Date.now();
    let line: Record<string, unknown> | undefined;
    await waitFor(() => (line = flowLines().find((l) => !seen.has(l['flowId']))) !== undefined, 3_000, 10);
    // what `tail -f` on the log shows: buffered lines go out at least every 200 ms
    expect(Date.now() - closedAt).toBeLessThan(1_000);
    const [audited] = await waitForAudit(auditLog, (l) => l.event === 'flow.end' && l.flowId === line?.['flowId'], 1);
    const a = audited as unknown as Record<string, unknown>;
    expect(Object.keys(line ?? {})).toEqual(['level', 'time', 'service', 'pid', 'flowId', 'sni', 'verdict', 'ruleId', 'reason', 'dst', 'src', 'protocol', 'closeReason', 'bytesUp', 'bytesDown', 'durationMs', 'traceId', 'msg']);
    expect(line).toEqual({
      level: 30,
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      service: 'edge-proxy',
      pid: edgeProc.child.pid,
      ...Object.fromEntries(['flowId', 'sni', 'verdict', 'ruleId', 'reason', 'dst', 'src', 'protocol', 'closeReason', 'bytesUp', 'bytesDown', 'durationMs', 'traceId'].map((k) => [k, a[k]])),
      msg: 'flow.end',
    });
    expect(line).toMatchObject({ sni: 'traced.test', verdict: 'allow', ruleId: 'traced', closeReason: expect.any(String), traceId: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(line?.['bytesUp']).toBeGreaterThan(300);
  });
});
