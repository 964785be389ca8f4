// Original file: proto/portcullis/v1/policy_admin.proto

import type { Long } from '@grpc/proto-loader';

export interface PolicyDocument {
  'version'?: (number | string | Long);
  'content'?: (string);
  'profile_name'?: (string);
  'applied_by'?: (string);
  'applied_at'?: (string);
  'comment'?: (string);
  'sha256'?: (string);
}

export interface PolicyDocument__Output {
  'version': (number);
  'content': (string);
  'profile_name': (string);
  'applied_by': (string);
  'applied_at': (string);
  'comment': (string);
  'sha256': (string);
}
