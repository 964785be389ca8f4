// Original file: proto/portcullis/v1/policy_admin.proto

import type { ValidationProblem as _portcullis_v1_ValidationProblem, ValidationProblem__Output as _portcullis_v1_ValidationProblem__Output } from '../../portcullis/v1/ValidationProblem';
import type { RuleChange as _portcullis_v1_RuleChange, RuleChange__Output as _portcullis_v1_RuleChange__Output } from '../../portcullis/v1/RuleChange';
import type { Long } from '@grpc/proto-loader';

export interface ApplyPolicyResponse {
  'valid'?: (boolean);
  'applied'?: (boolean);
  'version'?: (number | string | Long);
  'problems'?: (_portcullis_v1_ValidationProblem)[];
  'diff'?: (_portcullis_v1_RuleChange)[];
}

export interface ApplyPolicyResponse__Output {
  'valid': (boolean);
  'applied': (boolean);
  'version': (number);
  'problems': (_portcullis_v1_ValidationProblem__Output)[];
  'diff': (_portcullis_v1_RuleChange__Output)[];
}
