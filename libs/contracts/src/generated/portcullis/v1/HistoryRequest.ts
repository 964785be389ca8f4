// Original file: proto/portcullis/v1/policy_admin.proto


export interface HistoryRequest {
  'limit'?: (number);
}

export interface HistoryRequest__Output {
  'limit': (number);
}
