// Original file: proto/portcullis/v1/policy_decision.proto

import type { DecideResponse as _portcullis_v1_DecideResponse, DecideResponse__Output as _portcullis_v1_DecideResponse__Output } from '../../portcullis/v1/DecideResponse';
import type { DecideStreamResponse as _portcullis_v1_DecideStreamResponse, DecideStreamResponse__Output as _portcullis_v1_DecideStreamResponse__Output } from '../../portcullis/v1/DecideStreamResponse';
import type { Long } from '@grpc/proto-loader';

export interface DecideStreamResponse {
  'request_id'?: (number | string | Long);
  'response'?: (_portcullis_v1_DecideResponse | null);
  'error'?: (string);
  'batch'?: (_portcullis_v1_DecideStreamResponse)[];
}

export interface DecideStreamResponse__Output {
  'request_id': (number);
  'response': (_portcullis_v1_DecideResponse__Output | null);
  'error': (string);
  'batch': (_portcullis_v1_DecideStreamResponse__Output)[];
}
