// Original file: proto/portcullis/v1/policy_decision.proto


export interface WatchPolicyRequest {
  'node_id'?: (string);
}

export interface WatchPolicyRequest__Output {
  'node_id': (string);
}
