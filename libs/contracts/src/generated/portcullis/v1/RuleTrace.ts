// Original file: proto/portcullis/v1/policy_admin.proto


export interface RuleTrace {
  'rule_id'?: (string);
  'index'?: (number);
  'matched'?: (boolean);
  'action'?: (string);
  'detail'?: (string);
}

export interface RuleTrace__Output {
  'rule_id': (string);
  'index': (number);
  'matched': (boolean);
  'action': (string);
  'detail': (string);
}
