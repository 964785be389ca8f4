// The foundation's promise: three services as separate processes on a real Redis; an allowed SNI
// reaches a real TLS upstream byte for byte, a denied one gets access_denied and never leaves,
// and every connection leaves one flow.start and one flow.end in the audit log.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, makeCerts, startRedis, startTlsUpstream } from '@portcullis/testing';
import type { TestCerts, TestRedis, TlsUpstream } from '@portcullis/testing';
import { readAudit, waitForAudit } from '../support/audit-log';
import { startApp, waitForOutput, writeConfig } from '../support/processes';
import type { Proc } from '../support/processes';
import { nodeTls, opensslClient } from '../support/tls-client';

const PROFILE = `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: e2e
mode: enforce
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: allowed
    action: allow
    fqdns: ["allowed.test", "*.allowed.test"]
    allowPrivate: ["127.0.0.0/8"] # the test upstreams live on loopback
`;

describe('walking skeleton: edge, policy and audit as processes on real Redis', () => {
  let dir: string;
  let redis: TestRedis;
  let certs: TestCerts;
  let upstream: TlsUpstream;
  let edgePort: number;
  let auditLog: string;
  const procs: Proc[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-e2e-'));
    redis = await startRedis();
    certs = makeCerts(['allowed.test', 'deep.sub.allowed.test', 'denied.test']);
    upstream = await startTlsUpstream(certs);
    edgePort = await freePort();
    const policyPort = await freePort();
    auditLog = join(dir, 'audit.log');
    writeFileSync(join(dir, 'profile.yaml'), PROFILE);
    const config = writeConfig(dir, 'portcullis.yaml', {
      redis: { url: redis.url },
      policy: { listen: `127.0.0.1:${policyPort}`, profile: join(dir, 'profile.yaml'), adminToken: 'e2e-token-123' },
      edge: {
        nodeId: 'edge-e2e',
        policyService: `127.0.0.1:${policyPort}`,
        listeners: [{ name: 'tls', mode: 'sni', listen: `127.0.0.1:${edgePort}`, upstreamPort: upstream.port }],
        // denied.test resolves to the same upstream: if it were let through, the upstream would see it
        resolve: { 'allowed.test': ['127.0.0.1'], 'deep.sub.allowed.test': ['127.0.0.1'], 'denied.test': ['127.0.0.1'] },
        sniffTimeoutMs: 2000,
        spoolDir: join(dir, 'spool'),
      },
      audit: { log: auditLog },
    });
    const policy = startApp('policy-service', ['--config', config]);
    procs.push(policy);
    await waitForOutput(policy, 'policy-service listening');
    const audit = startApp('audit-service', ['--config', config]);
    procs.push(audit);
    const edge = startApp('edge-proxy', ['--config', config]);
    procs.push(edge);
    await waitForOutput(audit, 'audit-service consuming');
    await waitForOutput(edge, 'edge listening');
  });

  afterAll(async () => {
    for (const p of procs.reverse()) await p.stop();
    await upstream?.close();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('relays an allowed SNI to the upstream with the ClientHello bytes unchanged (Node tls)', async () => {
    const before = upstream.connections.length;
    const r = await nodeTls(edgePort, 'allowed.test', certs.ca);
    expect(r.errorCode).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.body).toBe('hello from upstream allowed.test\n');
    expect(upstream.connections.length).toBe(before + 1);
    const seen = Buffer.concat(upstream.connections[before]?.raw ?? []);
    // everything the client sent, the hello first, arrived unchanged and in order
    expect({ seen: seen.length, sent: r.sent.length }).toEqual({ seen: r.sent.length, sent: r.sent.length });
    expect(seen.equals(r.sent)).toBe(true);
    expect(seen[0]).toBe(0x16);

    const lines = await waitForAudit(auditLog, (l) => l.sni === 'allowed.test', 2);
    const start = lines.find((l) => l.event === 'flow.start');
    const end = lines.find((l) => l.event === 'flow.end');
    expect(start).toMatchObject({ verdict: 'allow', ruleId: 'allowed', protocol: 'tls', listener: 'tls', nodeId: 'edge-e2e' });
    expect(end?.flowId).toBe(start?.flowId);
    expect(end?.bytesUp).toBe(r.sent.length);
    expect(end?.bytesDown).toBe(r.received.length);
  });

  it('completes a real handshake for openssl s_client with certificate verification', async () => {
    const r = await opensslClient(edgePort, 'deep.sub.allowed.test', certs.caPath);
    expect(r.out).toContain('Verify return code: 0 (ok)');
    expect(r.out).toContain('hello from upstream deep.sub.allowed.test');
  });

  it('answers a denied SNI with a fatal access_denied alert and never dials the upstream', async () => {
    const before = upstream.connections.length;
    const r = await nodeTls(edgePort, 'denied.test', certs.ca);
    expect(r.ok).toBe(false);
    expect(r.errorCode).toBe('ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    expect(r.received.equals(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31]))).toBe(true);

    const o = await opensslClient(edgePort, 'denied.test', certs.caPath);
    expect(o.out).toMatch(/alert access denied/i);
    expect(upstream.connections.length).toBe(before);

    const lines = await waitForAudit(auditLog, (l) => l.sni === 'denied.test', 4);
    const starts = lines.filter((l) => l.event === 'flow.start');
    expect(starts).toHaveLength(2);
    for (const s of starts) expect(s).toMatchObject({ verdict: 'deny', reason: 'default', ruleId: '' });
    for (const e of lines.filter((l) => l.event === 'flow.end')) expect(e).toMatchObject({ bytesUp: 0, bytesDown: 0, closeReason: 'denied' });
  });

  it('writes exactly one flow.start and one flow.end per connection', async () => {
    await new Promise((r) => setTimeout(r, 500));
    const lines = readAudit(auditLog);
    const byFlow = new Map<string, string[]>();
    for (const l of lines) byFlow.set(l.flowId, [...(byFlow.get(l.flowId) ?? []), l.event]);
    expect(byFlow.size).toBe(4);
    for (const events of byFlow.values()) expect(events.sort()).toEqual(['flow.end', 'flow.start']);
  });
});
