// Original file: proto/portcullis/v1/policy_decision.proto

import type { Long } from '@grpc/proto-loader';

export interface PolicyVersionEvent {
  'version'?: (number | string | Long);
  'profile_name'?: (string);
  'applied_at'?: (string);
}

export interface PolicyVersionEvent__Output {
  'version': (number);
  'profile_name': (string);
  'applied_at': (string);
}
