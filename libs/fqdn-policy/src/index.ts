// Public surface of the FQDN policy engine (pure: no I/O). See docs/policy.md.
export type {
  Action,
  CompiledPolicy,
  Decision,
  DecisionInput,
  Explanation,
  Mode,
  ParseResult,
  Profile,
  ReasonCode,
  Rule,
  RuleChange,
  RuleTrace,
  ValidationProblem,
} from './types';
export { parseProfileText } from './parse-text';
export { validateProfile } from './validate';
export { compileProfile, PolicyCompileError } from './compile';
export { diffProfiles, PROFILE_ID } from './diff';
export { isPublicSuffix } from './public-suffix';
export { checkRegexSafety } from './regex-safety';
export { parseCidr } from './cidr';
export { discoverProfile, discoverRules, registrableDomain } from './discover';
export type { Observation, DiscoveredRule } from './discover';
