// Original file: proto/portcullis/v1/policy_decision.proto

import type { DecideRequest as _portcullis_v1_DecideRequest, DecideRequest__Output as _portcullis_v1_DecideRequest__Output } from '../../portcullis/v1/DecideRequest';
import type { DecideStreamRequest as _portcullis_v1_DecideStreamRequest, DecideStreamRequest__Output as _portcullis_v1_DecideStreamRequest__Output } from '../../portcullis/v1/DecideStreamRequest';
import type { Long } from '@grpc/proto-loader';

export interface DecideStreamRequest {
  'request_id'?: (number | string | Long);
  'request'?: (_portcullis_v1_DecideRequest | null);
  'batch'?: (_portcullis_v1_DecideStreamRequest)[];
}

export interface DecideStreamRequest__Output {
  'request_id': (number);
  'request': (_portcullis_v1_DecideRequest__Output | null);
  'batch': (_portcullis_v1_DecideStreamRequest__Output)[];
}
