// Original file: proto/portcullis/v1/policy_admin.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ApplyPolicyRequest as _portcullis_v1_ApplyPolicyRequest, ApplyPolicyRequest__Output as _portcullis_v1_ApplyPolicyRequest__Output } from '../../portcullis/v1/ApplyPolicyRequest';
import type { ApplyPolicyResponse as _portcullis_v1_ApplyPolicyResponse, ApplyPolicyResponse__Output as _portcullis_v1_ApplyPolicyResponse__Output } from '../../portcullis/v1/ApplyPolicyResponse';
import type { ExplainRequest as _portcullis_v1_ExplainRequest, ExplainRequest__Output as _portcullis_v1_ExplainRequest__Output } from '../../portcullis/v1/ExplainRequest';
import type { ExplainResponse as _portcullis_v1_ExplainResponse, ExplainResponse__Output as _portcullis_v1_ExplainResponse__Output } from '../../portcullis/v1/ExplainResponse';
import type { GetPolicyRequest as _portcullis_v1_GetPolicyRequest, GetPolicyRequest__Output as _portcullis_v1_GetPolicyRequest__Output } from '../../portcullis/v1/GetPolicyRequest';
import type { HistoryRequest as _portcullis_v1_HistoryRequest, HistoryRequest__Output as _portcullis_v1_HistoryRequest__Output } from '../../portcullis/v1/HistoryRequest';
import type { HistoryResponse as _portcullis_v1_HistoryResponse, HistoryResponse__Output as _portcullis_v1_HistoryResponse__Output } from '../../portcullis/v1/HistoryResponse';
import type { PolicyDocument as _portcullis_v1_PolicyDocument, PolicyDocument__Output as _portcullis_v1_PolicyDocument__Output } from '../../portcullis/v1/PolicyDocument';
import type { ValidatePolicyRequest as _portcullis_v1_ValidatePolicyRequest, ValidatePolicyRequest__Output as _portcullis_v1_ValidatePolicyRequest__Output } from '../../portcullis/v1/ValidatePolicyRequest';
import type { ValidatePolicyResponse as _portcullis_v1_ValidatePolicyResponse, ValidatePolicyResponse__Output as _portcullis_v1_ValidatePolicyResponse__Output } from '../../portcullis/v1/ValidatePolicyResponse';

export interface PolicyAdminClient extends grpc.Client {
  ApplyPolicy(argument: _portcullis_v1_ApplyPolicyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_ApplyPolicyResponse__Output>): grpc.ClientUnaryCall;
  ApplyPolicy(argument: _portcullis_v1_ApplyPolicyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_portcullis_v1_ApplyPolicyResponse__Output>): grpc.ClientUnaryCall;
  ApplyPolicy(argument: _portcullis_v1_ApplyPolicyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_ApplyPolicyResponse__Output>): grpc.ClientUnaryCall;
  ApplyPolicy(argument: _portcullis_v1_ApplyPolicyRequest, callback: grpc.requestCallback<_portcullis_v1_ApplyPolicyResponse__Output>): grpc.ClientUnaryCall;
  applyPolicy(argument: _portcullis_v1_ApplyPolicyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_ApplyPolicyResponse__Output>): grpc.ClientUnaryCall;
  applyPolicy(argument: _portcullis_v1_ApplyPolicyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_portcullis_v1_ApplyPolicyResponse__Output>): grpc.ClientUnaryCall;
  applyPolicy(argument: _portcullis_v1_ApplyPolicyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_ApplyPolicyResponse__Output>): grpc.ClientUnaryCall;
  applyPolicy(argument: _portcullis_v1_ApplyPolicyRequest, callback: grpc.requestCallback<_portcullis_v1_ApplyPolicyResponse__Output>): grpc.ClientUnaryCall;
  
  Explain(argument: _portcullis_v1_ExplainRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  Explain(argument: _portcullis_v1_ExplainRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_portcullis_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  Explain(argument: _portcullis_v1_ExplainRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  Explain(argument: _portcullis_v1_ExplainRequest, callback: grpc.requestCallback<_portcullis_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  explain(argument: _portcullis_v1_ExplainRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  explain(argument: _portcullis_v1_ExplainRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_portcullis_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  explain(argument: _portcullis_v1_ExplainRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  explain(argument: _portcullis_v1_ExplainRequest, callback: grpc.requestCallback<_portcullis_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  
  GetPolicy(argument: _portcullis_v1_GetPolicyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_PolicyDocument__Output>): grpc.ClientUnaryCall;
  GetPolicy(argument: _portcullis_v1_GetPolicyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_portcullis_v1_PolicyDocument__Output>): grpc.ClientUnaryCall;
  GetPolicy(argument: _portcullis_v1_GetPolicyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_PolicyDocument__Output>): grpc.ClientUnaryCall;
  GetPolicy(argument: _portcullis_v1_GetPolicyRequest, callback: grpc.requestCallback<_portcullis_v1_PolicyDocument__Output>): grpc.ClientUnaryCall;
  getPolicy(argument: _portcullis_v1_GetPolicyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_PolicyDocument__Output>): grpc.ClientUnaryCall;
  getPolicy(argument: _portcullis_v1_GetPolicyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_portcullis_v1_PolicyDocument__Output>): grpc.ClientUnaryCall;
  getPolicy(argument: _portcullis_v1_GetPolicyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_PolicyDocument__Output>): grpc.ClientUnaryCall;
  getPolicy(argument: _portcullis_v1_GetPolicyRequest, callback: grpc.requestCallback<_portcullis_v1_PolicyDocument__Output>): grpc.ClientUnaryCall;
  
  History(argument: _portcullis_v1_HistoryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_HistoryResponse__Output>): grpc.ClientUnaryCall;
  History(argument: _portcullis_v1_HistoryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_portcullis_v1_HistoryResponse__Output>): grpc.ClientUnaryCall;
  History(argument: _portcullis_v1_HistoryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_HistoryResponse__Output>): grpc.ClientUnaryCall;
  History(argument: _portcullis_v1_HistoryRequest, callback: grpc.requestCallback<_portcullis_v1_HistoryResponse__Output>): grpc.ClientUnaryCall;
  history(argument: _portcullis_v1_HistoryRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_HistoryResponse__Output>): grpc.ClientUnaryCall;
  history(argument: _portcullis_v1_HistoryRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_portcullis_v1_HistoryResponse__Output>): grpc.ClientUnaryCall;
  history(argument: _portcullis_v1_HistoryRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_HistoryResponse__Output>): grpc.ClientUnaryCall;
  history(argument: _portcullis_v1_HistoryRequest, callback: grpc.requestCallback<_portcullis_v1_HistoryResponse__Output>): grpc.ClientUnaryCall;
  
  ValidatePolicy(argument: _portcullis_v1_ValidatePolicyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_ValidatePolicyResponse__Output>): grpc.ClientUnaryCall;
  ValidatePolicy(argument: _portcullis_v1_ValidatePolicyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_portcullis_v1_ValidatePolicyResponse__Output>): grpc.ClientUnaryCall;
  ValidatePolicy(argument: _portcullis_v1_ValidatePolicyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_ValidatePolicyResponse__Output>): grpc.ClientUnaryCall;
  ValidatePolicy(argument: _portcullis_v1_ValidatePolicyRequest, callback: grpc.requestCallback<_portcullis_v1_ValidatePolicyResponse__Output>): grpc.ClientUnaryCall;
  validatePolicy(argument: _portcullis_v1_ValidatePolicyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_ValidatePolicyResponse__Output>): grpc.ClientUnaryCall;
  validatePolicy(argument: _portcullis_v1_ValidatePolicyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_portcullis_v1_ValidatePolicyResponse__Output>): grpc.ClientUnaryCall;
  validatePolicy(argument: _portcullis_v1_ValidatePolicyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_ValidatePolicyResponse__Output>): grpc.ClientUnaryCall;
  validatePolicy(argument: _portcullis_v1_ValidatePolicyRequest, callback: grpc.requestCallback<_portcullis_v1_ValidatePolicyResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface PolicyAdminHandlers extends grpc.UntypedServiceImplementation {
  ApplyPolicy: grpc.handleUnaryCall<_portcullis_v1_ApplyPolicyRequest__Output, _portcullis_v1_ApplyPolicyResponse>;
  
  Explain: grpc.handleUnaryCall<_portcullis_v1_ExplainRequest__Output, _portcullis_v1_ExplainResponse>;
  
  GetPolicy: grpc.handleUnaryCall<_portcullis_v1_GetPolicyRequest__Output, _portcullis_v1_PolicyDocument>;
  
  History: grpc.handleUnaryCall<_portcullis_v1_HistoryRequest__Output, _portcullis_v1_HistoryResponse>;
  
  ValidatePolicy: grpc.handleUnaryCall<_portcullis_v1_ValidatePolicyRequest__Output, _portcullis_v1_ValidatePolicyResponse>;
  
}

export interface PolicyAdminDefinition extends grpc.ServiceDefinition {
  ApplyPolicy: MethodDefinition<_portcullis_v1_ApplyPolicyRequest, _portcullis_v1_ApplyPolicyResponse, _portcullis_v1_ApplyPolicyRequest__Output, _portcullis_v1_ApplyPolicyResponse__Output>
  Explain: MethodDefinition<_portcullis_v1_ExplainRequest, _portcullis_v1_ExplainResponse, _portcullis_v1_ExplainRequest__Output, _portcullis_v1_ExplainResponse__Output>
  GetPolicy: MethodDefinition<_portcullis_v1_GetPolicyRequest, _portcullis_v1_PolicyDocument, _portcullis_v1_GetPolicyRequest__Output, _portcullis_v1_PolicyDocument__Output>
  History: MethodDefinition<_portcullis_v1_HistoryRequest, _portcullis_v1_HistoryResponse, _portcullis_v1_HistoryRequest__Output, _portcullis_v1_HistoryResponse__Output>
  ValidatePolicy: MethodDefinition<_portcullis_v1_ValidatePolicyRequest, _portcullis_v1_ValidatePolicyResponse, _portcullis_v1_ValidatePolicyRequest__Output, _portcullis_v1_ValidatePolicyResponse__Output>
}
