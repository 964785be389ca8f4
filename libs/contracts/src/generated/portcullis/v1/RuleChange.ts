// Original file: proto/portcullis/v1/policy_admin.proto


export interface RuleChange {
  'rule_id'?: (string);
  'change'?: (string);
  'detail'?: (string);
}

export interface RuleChange__Output {
  'rule_id': (string);
  'change': (string);
  'detail': (string);
}
