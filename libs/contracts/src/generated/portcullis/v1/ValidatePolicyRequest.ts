// Original file: proto/portcullis/v1/policy_admin.proto


export interface ValidatePolicyRequest {
  'content'?: (string);
}

export interface ValidatePolicyRequest__Output {
  'content': (string);
}
