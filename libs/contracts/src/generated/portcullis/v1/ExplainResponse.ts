// Original file: proto/portcullis/v1/policy_admin.proto

import type { DecideResponse as _portcullis_v1_DecideResponse, DecideResponse__Output as _portcullis_v1_DecideResponse__Output } from '../../portcullis/v1/DecideResponse';
import type { RuleTrace as _portcullis_v1_RuleTrace, RuleTrace__Output as _portcullis_v1_RuleTrace__Output } from '../../portcullis/v1/RuleTrace';

export interface ExplainResponse {
  'normalized_name'?: (string);
  'decision'?: (_portcullis_v1_DecideResponse | null);
  'rules'?: (_portcullis_v1_RuleTrace)[];
}

export interface ExplainResponse__Output {
  'normalized_name': (string);
  'decision': (_portcullis_v1_DecideResponse__Output | null);
  'rules': (_portcullis_v1_RuleTrace__Output)[];
}
