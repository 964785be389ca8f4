// Redis Cluster and Sentinel: the policy store (an atomic Lua apply over hash-tagged keys), the
// verdict cache, the flow stream and the audit aggregates all work on each topology.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { startAuditService } from '@portcullis/audit';
import { encodeFlowEvent, RedisFlowTransport } from '@portcullis/flow-events';
import { connectRedis, parseConfig } from '@portcullis/platform';
import type { PortcullisConfig } from '@portcullis/platform';
import { startPolicyService } from '@portcullis/policy';
import { startRedisCluster, startRedisSentinel, waitFor } from '@portcullis/testing';
import { readAudit } from '../support/audit-log';
import { admin, adminClient, decide, decisionClient, healthStatus } from '../support/grpc';

const PROFILE = 'apiVersion: portcullis/v1\nkind: FqdnFilterProfile\nname: topo\ndefaultAction: deny\nnoSni: deny\nech: deny\nrules:\n  - id: ok\n    action: allow\n    fqdns: ["ok.test"]\n';
const log = pino({ level: 'silent' });

async function exercise(redis: Record<string, unknown>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-topo-'));
  writeFileSync(join(dir, 'p.yaml'), PROFILE);
  const config: Readonly<PortcullisConfig> = parseConfig({ redis, policy: { listen: '127.0.0.1:0', profile: join(dir, 'p.yaml'), adminToken: 'topo-token' }, audit: { log: join(dir, 'audit.log'), consumer: 'topo' } });
  const policy = await startPolicyService(config, { log });
  const audit = await startAuditService(config, { log });
  const client = connectRedis(config.redis);
  const dec = decisionClient(policy.address);
  const adm = adminClient(policy.address);
  try {
    expect(await healthStatus(policy.address)).toBe('SERVING');
    expect((await decide(dec, { sni: 'ok.test', port: 443 })).cache_hit).toBe(false);
    expect(await decide(dec, { sni: 'ok.test', port: 443 })).toMatchObject({ verdict: 'VERDICT_ALLOW', cache_hit: true });
    const applied = await admin(adm, 'topo-token').apply({ content: PROFILE.replace('"ok.test"', '"ok.test", "new.test"'), comment: 'second' });
    expect(applied).toMatchObject({ applied: true, version: 2 });
    await waitFor(async () => (await decide(dec, { sni: 'new.test', port: 443 })).verdict === 'VERDICT_ALLOW', 2_000);
    const events = Array.from({ length: 50 }, (_, i) => encodeFlowEvent({ v: 1, event: 'flow.start', flowId: `topo-${i}`, nodeId: 'n', listener: 'tls', mode: 'sni', src: '10.0.0.1:1', dst: '', sni: 'ok.test', connectHost: '', protocol: 'tls', verdict: 'allow', ruleId: 'ok', reason: 'rule', policyVersion: 2, startTime: new Date().toISOString() }));
    await new RedisFlowTransport(client, { maxLen: 10_000 }).add(events);
    await waitFor(() => readAudit(join(dir, 'audit.log')).length === 50, 10_000);
    const top = await audit.aggregates?.top(300_000, 5);
    expect(top?.name[0]).toMatchObject({ key: 'ok.test', attempts: 50 });
  } finally {
    dec.close();
    adm.close();
    client.disconnect();
    await audit.stop();
    await policy.stop();
  }
}

describe('Redis topologies', () => {
  it('Redis Cluster (three masters)', async () => {
    const cluster = await startRedisCluster();
    try {
      await exercise({ cluster: { nodes: cluster.nodes } });
    } finally {
      await cluster.stop();
    }
  });

  it('Redis Sentinel', async () => {
    const s = await startRedisSentinel();
    try {
      await exercise({ sentinels: { name: s.name, hosts: s.sentinels } });
    } finally {
      await s.stop();
    }
  });
});
