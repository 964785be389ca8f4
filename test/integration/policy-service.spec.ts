// Two policy-service replicas on one real Redis, reached over real gRPC.
import * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PolicyAdminClient, PolicyDecisionClient, PolicyVersionEvent__Output } from '@portcullis/contracts';
import { startPolicyService } from '@portcullis/policy';
import type { PolicyServiceHandle } from '@portcullis/policy';
import { startRedis } from '@portcullis/testing';
import type { TestRedis } from '@portcullis/testing';
import { admin, adminClient, decide, decisionClient, healthStatus } from '../support/grpc';
import { githubProfile, policyConfig } from '../support/policy';

const TOKEN = 'integration-token';

describe('policy-service replicas on one Redis', () => {
  let redis: TestRedis;
  let a: PolicyServiceHandle;
  let b: PolicyServiceHandle;
  let decA: PolicyDecisionClient;
  let decB: PolicyDecisionClient;
  let admA: PolicyAdminClient;
  let admB: PolicyAdminClient;
  const log = pino({ level: 'silent' });

  beforeAll(async () => {
    redis = await startRedis();
    const config = policyConfig(redis.url, githubProfile(), TOKEN);
    [a, b] = await Promise.all([startPolicyService(config, { log }), startPolicyService(config, { log })]);
    decA = decisionClient(a.address);
    decB = decisionClient(b.address);
    admA = adminClient(a.address);
    admB = adminClient(b.address);
  });

  afterAll(async () => {
    for (const c of [decA, decB, admA, admB]) c?.close();
    await a?.stop();
    await b?.stop();
    await redis?.stop();
  });


  it('both replicas start from one seeded version and report SERVING', async () => {
    expect(a.active.current?.version).toBe(1);
    expect(b.active.current?.version).toBe(1);
    expect(await healthStatus(a.address)).toBe('SERVING');
    expect(await healthStatus(b.address, 'portcullis.v1.PolicyDecision')).toBe('SERVING');
  });

  it('decides by the profile and explains itself', async () => {
    const allow = await decide(decA, { sni: 'api.github.com', port: 443 });
    expect(allow).toMatchObject({ verdict: 'VERDICT_ALLOW', rule_id: 'github', reason: 'rule', policy_version: 1 });
    expect(allow.cache_ttl_ms).toBeGreaterThan(0);
    const deny = await decide(decB, { sni: 'api.github.com', port: 80 });
    expect(deny).toMatchObject({ verdict: 'VERDICT_DENY', rule_id: '', reason: 'default' });
    const silent = await decide(decB, { port: 443, no_name_reason: 'client-silent' });
    expect(silent).toMatchObject({ verdict: 'VERDICT_DENY', reason: 'client-silent' });
  });

  it('answers repeated questions from the Redis verdict cache, and a new version makes old entries unreachable', async () => {
    const q = { sni: 'cache.github.com', port: 443 };
    expect((await decide(decA, q)).cache_hit).toBe(false);
    expect((await decide(decB, q)).cache_hit).toBe(true); // the other replica's entry
    const client = new Redis(redis.url);
    const keys = await client.keys(`portcullis:verdict:${a.active.current?.version}:*`);
    client.disconnect();
    expect(keys.some((k) => k.startsWith(`portcullis:verdict:${a.active.current?.version}:cache.github.com|`))).toBe(true);
    const r = await admin(admA, TOKEN).apply({ content: githubProfile(), comment: 'same rules, new version' });
    expect(r.applied).toBe(true);
    await new Promise((res) => setTimeout(res, 300));
    const after = await decide(decB, q);
    expect(after.policy_version).toBe(r.version);
    expect(after.cache_hit).toBe(false);
  });

  it('an apply on one replica is answered by the other within 250 ms', async () => {
    const before = b.active.current?.version ?? 0;
    const watch = decB.WatchPolicy({ node_id: 'it' });
    const seen: { version: number; at: number }[] = [];
    watch.on('data', (e: PolicyVersionEvent__Output) => seen.push({ version: e.version, at: Date.now() }));
    watch.on('error', () => undefined);
    await new Promise((res) => setTimeout(res, 100));
    expect(seen[0]?.version).toBe(before); // current version at once
    const t0 = Date.now();
    const r = await admin(admA, TOKEN).apply({ content: githubProfile(`  - id: deny-gist\n    action: deny\n    fqdns: ["gist.github.com"]\n`), comment: 'deny gist' });
    let answered = 0;
    for (;;) {
      const d = await decide(decB, { sni: 'x.gist.github.com', port: 443 });
      if (d.policy_version === r.version) {
        answered = Date.now();
        break;
      }
      if (Date.now() - t0 > 2_000) throw new Error('replica B never switched');
    }
    expect(answered - t0).toBeLessThanOrEqual(250);
    expect(seen.at(-1)?.version).toBe(r.version);
    watch.cancel();
  });

  it('concurrent applies through both replicas publish distinct versions', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => admin(i % 2 ? admA : admB, TOKEN).apply({ content: githubProfile(), comment: `c${i}` })));
    const versions = results.map((r) => r.version);
    expect(new Set(versions).size).toBe(10);
  });

  it('refuses admin calls without the right token (UNAUTHENTICATED)', async () => {
    await expect(admin(admA, '').get({})).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    await expect(admin(admA, 'wrong-token').apply({ content: githubProfile() })).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
  });

  it('dry run returns the validation and a rule diff without publishing; an invalid profile never replaces the active one', async () => {
    const active = (await admin(admA, TOKEN).get({})).version;
    const dry = await admin(admA, TOKEN).apply({ content: githubProfile(`  - id: new-rule\n    action: allow\n    fqdns: ["example.org"]\n`), dry_run: true });
    expect(dry).toMatchObject({ valid: true, applied: false, version: active });
    expect(dry.diff).toEqual(expect.arrayContaining([expect.objectContaining({ rule_id: 'new-rule', change: 'added' })]));
    const bad = await admin(admA, TOKEN).apply({ content: 'apiVersion: portcullis/v1\nkind: FqdnFilterProfile\nname: x\nrules:\n  - id: a\n    action: maybe\n    fqdns: ["*.com"]\n' });
    expect(bad.valid).toBe(false);
    expect(bad.applied).toBe(false);
    expect(bad.problems.map((p) => p.path)).toEqual(expect.arrayContaining(['rules[0].action', 'rules[0].fqdns[0]']));
    expect((await admin(admB, TOKEN).get({})).version).toBe(active);
  });

  it('explains every rule considered, keeps history, and rolls back', async () => {
    const ex = await admin(admB, TOKEN).explain({ name: 'API.GitHub.com.', port: 22 });
    expect(ex.normalized_name).toBe('api.github.com');
    expect(ex.decision).toMatchObject({ verdict: 'VERDICT_ALLOW', rule_id: 'github' });
    expect(ex.rules[0]).toMatchObject({ rule_id: 'github', matched: true });
    const h = await admin(admA, TOKEN).history({ limit: 5 });
    expect(h.entries).toHaveLength(5);
    expect(h.entries[0]?.version).toBeGreaterThan(h.entries[4]?.version ?? 0);
    const target = h.entries[3]?.version ?? 0;
    const rb = await admin(admA, TOKEN).apply({ rollback_to_version: target });
    expect(rb.applied).toBe(true);
    const cur = await admin(admB, TOKEN).get({});
    const old = await admin(admB, TOKEN).get({ version: target });
    expect(cur.content).toBe(old.content);
    expect(cur.comment).toBe(`rollback to version ${target}`);
  });
});
