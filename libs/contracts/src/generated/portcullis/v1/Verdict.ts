// Original file: proto/portcullis/v1/policy_decision.proto

export const Verdict = {
  VERDICT_UNSPECIFIED: 'VERDICT_UNSPECIFIED',
  VERDICT_ALLOW: 'VERDICT_ALLOW',
  VERDICT_DENY: 'VERDICT_DENY',
} as const;

export type Verdict =
  | 'VERDICT_UNSPECIFIED'
  | 0
  | 'VERDICT_ALLOW'
  | 1
  | 'VERDICT_DENY'
  | 2

export type Verdict__Output = typeof Verdict[keyof typeof Verdict]
