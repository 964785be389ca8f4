// Original file: proto/portcullis/v1/policy_admin.proto

import type { HistoryEntry as _portcullis_v1_HistoryEntry, HistoryEntry__Output as _portcullis_v1_HistoryEntry__Output } from '../../portcullis/v1/HistoryEntry';

export interface HistoryResponse {
  'entries'?: (_portcullis_v1_HistoryEntry)[];
}

export interface HistoryResponse__Output {
  'entries': (_portcullis_v1_HistoryEntry__Output)[];
}
