export { normalizeName, normalizeRuleName } from './names';
export type { NameProblem, NameResult } from './names';
