// Original file: proto/portcullis/v1/policy_decision.proto

import type { Verdict as _portcullis_v1_Verdict, Verdict__Output as _portcullis_v1_Verdict__Output } from '../../portcullis/v1/Verdict';
import type { Long } from '@grpc/proto-loader';

export interface DecideResponse {
  'verdict'?: (_portcullis_v1_Verdict);
  'rule_id'?: (string);
  'reason'?: (string);
  'detail'?: (string);
  'policy_version'?: (number | string | Long);
  'cache_ttl_ms'?: (number);
  'would_deny'?: (boolean);
  'would_deny_rule_id'?: (string);
  'allow_private'?: (string)[];
  'cache_hit'?: (boolean);
}

export interface DecideResponse__Output {
  'verdict': (_portcullis_v1_Verdict__Output);
  'rule_id': (string);
  'reason': (string);
  'detail': (string);
  'policy_version': (number);
  'cache_ttl_ms': (number);
  'would_deny': (boolean);
  'would_deny_rule_id': (string);
  'allow_private': (string)[];
  'cache_hit': (boolean);
}
