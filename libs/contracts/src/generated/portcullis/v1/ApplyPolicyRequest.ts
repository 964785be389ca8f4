// Original file: proto/portcullis/v1/policy_admin.proto

import type { Long } from '@grpc/proto-loader';

export interface ApplyPolicyRequest {
  'content'?: (string);
  'dry_run'?: (boolean);
  'comment'?: (string);
  'author'?: (string);
  'rollback_to_version'?: (number | string | Long);
}

export interface ApplyPolicyRequest__Output {
  'content': (string);
  'dry_run': (boolean);
  'comment': (string);
  'author': (string);
  'rollback_to_version': (number);
}
