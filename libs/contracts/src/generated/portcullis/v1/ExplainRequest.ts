// Original file: proto/portcullis/v1/policy_admin.proto


export interface ExplainRequest {
  'name'?: (string);
  'port'?: (number);
  'source_ip'?: (string);
  'ech'?: (boolean);
}

export interface ExplainRequest__Output {
  'name': (string);
  'port': (number);
  'source_ip': (string);
  'ech': (boolean);
}
