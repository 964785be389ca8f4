export { startPolicyService, readProfileFile, ProfileFileError } from './service';
export type { PolicyServiceHandle, PolicyServiceDeps } from './service';
export { MemoryPolicyStore, RedisPolicyStore, policyKeys } from './store';
export type { PolicyStore, StoredPolicy } from './store';
export { MemoryVerdictCache, RedisVerdictCache, verdictKey } from './verdict-cache';
export type { VerdictCache } from './verdict-cache';
export { checkToken } from './admin';
