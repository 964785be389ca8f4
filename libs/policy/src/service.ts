// startPolicyService(config): the decision point and admin API on one gRPC server.
import { readFileSync } from 'node:fs';
import { parseProfileText } from '@portcullis/fqdn-policy';
import { loadContracts } from '@portcullis/contracts';
import { connectRedis, meter, redisConfigured, startGrpcServer } from '@portcullis/platform';
import type { Logger, PortcullisConfig, RedisClient } from '@portcullis/platform';
import { ActivePolicy, sha256 } from './active-policy';
import { adminHandlers } from './admin';
import { Decider, decisionHandlers } from './decision';
import { MemoryPolicyStore, RedisPolicyStore } from './store';
import type { PolicyStore } from './store';
import { MemoryVerdictCache, RedisVerdictCache } from './verdict-cache';
import type { VerdictCache } from './verdict-cache';

/** How long a Redis verdict-cache lookup may take before the replica just evaluates (Redis slow or stalled). */
const CACHE_BUDGET_MS = 20;

export interface PolicyServiceHandle {
  port: number;
  address: string;
  store: PolicyStore;
  active: ActivePolicy;
  ready(): Promise<boolean>;
  stop(): Promise<void>;
}

export interface PolicyServiceDeps {
  log: Logger;
  /** Embedded mode passes in-memory stand-ins; otherwise Redis from config.redis.url. */
  store?: PolicyStore;
  cache?: VerdictCache;
}

export class ProfileFileError extends Error {
  readonly code = 'PORTCULLIS_ERR_PROFILE';
}

/** Reads and validates the bootstrap profile; throws with every problem listed. */
export function readProfileFile(path: string): { content: string; name: string; ruleCount: number } {
  const content = readFileSync(path, 'utf8');
  const parsed = parseProfileText(content);
  if (!parsed.ok) {
    throw new ProfileFileError(`invalid profile ${path}:\n${parsed.problems.map((p) => `  - ${p.path}: ${p.message}${p.fix ? ` (${p.fix})` : ''}`).join('\n')}`);
  }
  return { content, name: parsed.profile.name, ruleCount: parsed.profile.rules.length };
}

export async function startPolicyService(config: Readonly<PortcullisConfig>, deps: PolicyServiceDeps): Promise<PolicyServiceHandle> {
  const log = deps.log;
  let redis: RedisClient | undefined;
  let store = deps.store;
  let cache = deps.cache;
  if (!store || !cache) {
    if (redisConfigured(config)) {
      redis = connectRedis(config.redis);
      redis.on('error', (err) => log.warn({ err: err.message }, 'redis error'));
      store ??= new RedisPolicyStore(redis, { prefix: config.redis.keyPrefix, historyLimit: config.policy.historyLimit });
      cache ??= new RedisVerdictCache(redis, { prefix: config.redis.keyPrefix, budgetMs: CACHE_BUDGET_MS, onError: (err) => log.debug({ err }, 'verdict cache failed') });
    } else {
      store ??= new MemoryPolicyStore(config.policy.historyLimit);
      cache ??= new MemoryVerdictCache();
    }
  }

  const active = new ActivePolicy(store, log);
  meter()
    .createObservableGauge('portcullis_policy_version', { description: 'Policy version this replica answers with' })
    .addCallback((r) => r.observe(active.current?.version ?? 0));
  const decider = new Decider(active, cache, { verdictTtlMs: config.policy.verdictTtlMs });
  const decision = decisionHandlers(decider, active, log);
  const contracts = loadContracts();
  const v1 = contracts.portcullis.v1;
  const server = await startGrpcServer(
    config.policy.listen,
    (s) => {
      s.addService(v1.PolicyDecision.service, decision.handlers);
      s.addService(v1.PolicyAdmin.service, adminHandlers({ store: store, active, adminToken: config.policy.adminToken, log, verdictTtlMs: config.policy.verdictTtlMs }));
    },
    ['portcullis.v1.PolicyDecision', 'portcullis.v1.PolicyAdmin'],
    config.grpcTls,
  );

  // Serving only with a loaded profile and a store that answers.
  const updateHealth = async (): Promise<void> => {
    const ok = active.current !== undefined && (await store.ping());
    server.setServing(ok ? 'SERVING' : 'NOT_SERVING');
  };
  active.onChange(() => void updateHealth());
  const healthTimer = setInterval(() => void updateHealth(), 1_000);
  healthTimer.unref();

  await active.start();
  if (!active.current && config.policy.profile) {
    const file = readProfileFile(config.policy.profile);
    // ifEmpty: several replicas may start at once; only the first one seeds the store.
    const stored = await store.apply(
      { content: file.content, profileName: file.name, appliedBy: `bootstrap:${config.policy.profile}`, appliedAt: new Date().toISOString(), comment: 'initial profile from policy.profile', sha256: sha256(file.content), ruleCount: file.ruleCount },
      { ifEmpty: true },
    );
    if (stored) log.info({ policyVersion: stored.version, file: config.policy.profile }, 'policy.seeded');
    await active.refresh();
  }
  if (!active.current) log.warn('no policy in the store and no policy.profile to seed it: not serving decisions');
  await updateHealth();
  log.info({ listen: server.address, store: store.kind, policyVersion: active.current?.version ?? 0 }, 'policy-service listening');

  return {
    port: server.port,
    address: server.address,
    store,
    active,
    ready: async () => active.current !== undefined && (await store.ping()),
    stop: async () => {
      clearInterval(healthTimer);
      server.setServing('NOT_SERVING');
      decision.closeStreams();
      await server.shutdown();
      active.stop();
      await store.close();
      redis?.disconnect();
    },
  };
}
