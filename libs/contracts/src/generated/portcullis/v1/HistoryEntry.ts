// Original file: proto/portcullis/v1/policy_admin.proto

import type { Long } from '@grpc/proto-loader';

export interface HistoryEntry {
  'version'?: (number | string | Long);
  'profile_name'?: (string);
  'applied_by'?: (string);
  'applied_at'?: (string);
  'comment'?: (string);
  'sha256'?: (string);
  'rule_count'?: (number);
}

export interface HistoryEntry__Output {
  'version': (number);
  'profile_name': (string);
  'applied_by': (string);
  'applied_at': (string);
  'comment': (string);
  'sha256': (string);
  'rule_count': (number);
}
