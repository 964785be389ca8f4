// Original file: proto/portcullis/v1/policy_admin.proto

import type { ValidationProblem as _portcullis_v1_ValidationProblem, ValidationProblem__Output as _portcullis_v1_ValidationProblem__Output } from '../../portcullis/v1/ValidationProblem';
import type { Long } from '@grpc/proto-loader';

export interface ValidatePolicyResponse {
  'valid'?: (boolean);
  'problems'?: (_portcullis_v1_ValidationProblem)[];
  'rule_count'?: (number);
  'name_count'?: (number | string | Long);
}

export interface ValidatePolicyResponse__Output {
  'valid': (boolean);
  'problems': (_portcullis_v1_ValidationProblem__Output)[];
  'rule_count': (number);
  'name_count': (number);
}
