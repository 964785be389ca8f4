// Original file: proto/portcullis/v1/policy_admin.proto


export interface ValidationProblem {
  'path'?: (string);
  'message'?: (string);
  'fix'?: (string);
}

export interface ValidationProblem__Output {
  'path': (string);
  'message': (string);
  'fix': (string);
}
