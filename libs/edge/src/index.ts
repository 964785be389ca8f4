export { startEdgeProxy } from './proxy';
export type { EdgeHandle, EdgeDeps } from './proxy';
export { DecisionClient } from './decide';
export type { Verdict, DecideInput } from './decide';
export { ACCESS_DENIED_ALERT, DECODE_ERROR_ALERT, INTERNAL_ERROR_ALERT } from './intake';
export { connectUpstream, resolveName } from './connect';
export { isEdgePrimary, superviseEdgeWorkers } from './workers';
export { SsrfGuard } from './ssrf';
