// Original file: proto/portcullis/v1/policy_decision.proto


export interface DecideRequest {
  'sni'?: (string);
  'connect_host'?: (string);
  'port'?: (number);
  'source_ip'?: (string);
  'protocol'?: (string);
  'ech'?: (boolean);
  'ech_grease'?: (boolean);
  'node_id'?: (string);
  'listener'?: (string);
  'flow_id'?: (string);
  'no_name_reason'?: (string);
  'traceparent'?: (string);
}

export interface DecideRequest__Output {
  'sni': (string);
  'connect_host': (string);
  'port': (number);
  'source_ip': (string);
  'protocol': (string);
  'ech': (boolean);
  'ech_grease': (boolean);
  'node_id': (string);
  'listener': (string);
  'flow_id': (string);
  'no_name_reason': (string);
  'traceparent': (string);
}
