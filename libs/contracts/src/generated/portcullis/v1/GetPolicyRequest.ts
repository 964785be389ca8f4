// Original file: proto/portcullis/v1/policy_admin.proto

import type { Long } from '@grpc/proto-loader';

export interface GetPolicyRequest {
  'version'?: (number | string | Long);
}

export interface GetPolicyRequest__Output {
  'version': (number);
}
