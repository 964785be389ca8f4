// The public shapes of the policy engine: the profile, a decision and its explanation, a diff.

export type Action = 'allow' | 'deny';
export type Mode = 'enforce' | 'monitor';

/** One thing wrong (or worth a warning) in a profile, at a path like `rules[3].fqdns[1]` ('' = the whole document). */
export interface ValidationProblem {
  path: string;
  message: string;
  /** What to write instead, when there is one obvious fix ("write xn--80ak6aa92e.com"). */
  fix?: string;
  /** The line in the YAML text, when the profile came from YAML. */
  line?: number;
}

/** A validated profile: every default filled in, names in A-label form, CIDRs canonical. Frozen. */
export interface Profile {
  apiVersion: 'portcullis/v1';
  kind: 'FqdnFilterProfile';
  name: string;
  mode: Mode;
  defaultAction: Action;
  noSni: Action;
  ech: Action;
  rules: Rule[];
}

export interface Rule {
  id: string;
  action: Action;
  /** `a.b.c` exact; `*.b.c` any subdomain of b.c (any depth), not b.c; `.b.c` b.c and all its subdomains. */
  fqdns: string[];
  /** Patterns as written; matched anchored and case-insensitively against the A-label name. */
  fqdnRegex: string[];
  /** Empty = any port. */
  ports: number[];
  /** Client CIDRs; empty = any client. */
  sources: string[];
  /** CIDRs this rule's names may resolve to although private; enforced by the edge. */
  allowPrivate: string[];
  allowPublicSuffixWildcard: boolean;
}

export type ParseResult =
  | { ok: true; profile: Profile; warnings: ValidationProblem[] }
  | { ok: false; problems: ValidationProblem[]; warnings: ValidationProblem[] };

export interface DecisionInput {
  /** The name as learned by the edge (SNI, CONNECT or SOCKS target); may be raw. Absent or '' = no name. */
  name?: string;
  port: number;
  /** Client address (IPv4, IPv6, or IPv4-mapped IPv6). */
  sourceIp?: string;
  /** The ClientHello carries an encrypted_client_hello extension. */
  ech?: boolean;
  /** ...and the edge recognised it as GREASE (no real inner hello): the name decides. */
  echGrease?: boolean;
  /** Why no name was learned ('client-silent', 'not-tls', ...); becomes the reason code. Default 'no-sni'. */
  noNameReason?: string;
}

/** Stable reason codes. A noNameReason given by the edge is passed through in place of 'no-sni'. */
export type ReasonCode = 'rule' | 'default' | 'no-sni' | 'ech' | 'invalid-name' | (string & {});

/** A verdict with its reason. Decisions are shared, frozen values: never mutate one. */
export interface Decision {
  verdict: Action;
  /** The rule that matched ('' when none did). */
  ruleId: string;
  reason: ReasonCode;
  /** One human sentence: "matched rule github", "no rule matched; default action deny". */
  detail: string;
  /** Monitor mode only: enforce mode would have denied. Always false in enforce mode. */
  wouldDeny: boolean;
  /** Monitor mode only: the rule that would have denied ('' for a default/noSni/ech denial). */
  wouldDenyRuleId: string;
  /** The matched allow rule's allowPrivate CIDRs (empty otherwise). */
  allowPrivate: readonly string[];
}

export interface RuleTrace {
  ruleId: string;
  index: number;
  /** Every condition of the rule holds for this input (the first such rule decides). */
  matched: boolean;
  action: Action;
  /** Why it matched or not: "name matches *.github.com; port 443 in [443]". */
  detail: string;
}

export interface Explanation {
  /** The name after normalisation ('' when there was none or it was invalid). */
  normalizedName: string;
  decision: Decision;
  rules: RuleTrace[];
}

export interface CompiledPolicy {
  profile: Profile;
  /** Number of fqdns entries (after removing duplicates within a rule). */
  nameCount: number;
  usesSources: boolean;
  usesPorts: boolean;
  decide(input: DecisionInput): Decision;
  explain(input: DecisionInput): Explanation;
}

export interface RuleChange {
  /** The rule's id, or '(profile)' for a change of mode/defaultAction/noSni/ech/name. */
  ruleId: string;
  change: 'added' | 'removed' | 'modified' | 'moved';
  detail: string;
}
