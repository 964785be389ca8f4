import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { ApplyPolicyRequest as _portcullis_v1_ApplyPolicyRequest, ApplyPolicyRequest__Output as _portcullis_v1_ApplyPolicyRequest__Output } from './portcullis/v1/ApplyPolicyRequest';
import type { ApplyPolicyResponse as _portcullis_v1_ApplyPolicyResponse, ApplyPolicyResponse__Output as _portcullis_v1_ApplyPolicyResponse__Output } from './portcullis/v1/ApplyPolicyResponse';
import type { DecideRequest as _portcullis_v1_DecideRequest, DecideRequest__Output as _portcullis_v1_DecideRequest__Output } from './portcullis/v1/DecideRequest';
import type { DecideResponse as _portcullis_v1_DecideResponse, DecideResponse__Output as _portcullis_v1_DecideResponse__Output } from './portcullis/v1/DecideResponse';
import type { DecideStreamRequest as _portcullis_v1_DecideStreamRequest, DecideStreamRequest__Output as _portcullis_v1_DecideStreamRequest__Output } from './portcullis/v1/DecideStreamRequest';
import type { DecideStreamResponse as _portcullis_v1_DecideStreamResponse, DecideStreamResponse__Output as _portcullis_v1_DecideStreamResponse__Output } from './portcullis/v1/DecideStreamResponse';
import type { ExplainRequest as _portcullis_v1_ExplainRequest, ExplainRequest__Output as _portcullis_v1_ExplainRequest__Output } from './portcullis/v1/ExplainRequest';
import type { ExplainResponse as _portcullis_v1_ExplainResponse, ExplainResponse__Output as _portcullis_v1_ExplainResponse__Output } from './portcullis/v1/ExplainResponse';
import type { GetPolicyRequest as _portcullis_v1_GetPolicyRequest, GetPolicyRequest__Output as _portcullis_v1_GetPolicyRequest__Output } from './portcullis/v1/GetPolicyRequest';
import type { HistoryEntry as _portcullis_v1_HistoryEntry, HistoryEntry__Output as _portcullis_v1_HistoryEntry__Output } from './portcullis/v1/HistoryEntry';
import type { HistoryRequest as _portcullis_v1_HistoryRequest, HistoryRequest__Output as _portcullis_v1_HistoryRequest__Output } from './portcullis/v1/HistoryRequest';
import type { HistoryResponse as _portcullis_v1_HistoryResponse, HistoryResponse__Output as _portcullis_v1_HistoryResponse__Output } from './portcullis/v1/HistoryResponse';
import type { PolicyAdminClient as _portcullis_v1_PolicyAdminClient, PolicyAdminDefinition as _portcullis_v1_PolicyAdminDefinition } from './portcullis/v1/PolicyAdmin';
import type { PolicyDecisionClient as _portcullis_v1_PolicyDecisionClient, PolicyDecisionDefinition as _portcullis_v1_PolicyDecisionDefinition } from './portcullis/v1/PolicyDecision';
import type { PolicyDocument as _portcullis_v1_PolicyDocument, PolicyDocument__Output as _portcullis_v1_PolicyDocument__Output } from './portcullis/v1/PolicyDocument';
import type { PolicyVersionEvent as _portcullis_v1_PolicyVersionEvent, PolicyVersionEvent__Output as _portcullis_v1_PolicyVersionEvent__Output } from './portcullis/v1/PolicyVersionEvent';
import type { RuleChange as _portcullis_v1_RuleChange, RuleChange__Output as _portcullis_v1_RuleChange__Output } from './portcullis/v1/RuleChange';
import type { RuleTrace as _portcullis_v1_RuleTrace, RuleTrace__Output as _portcullis_v1_RuleTrace__Output } from './portcullis/v1/RuleTrace';
import type { ValidatePolicyRequest as _portcullis_v1_ValidatePolicyRequest, ValidatePolicyRequest__Output as _portcullis_v1_ValidatePolicyRequest__Output } from './portcullis/v1/ValidatePolicyRequest';
import type { ValidatePolicyResponse as _portcullis_v1_ValidatePolicyResponse, ValidatePolicyResponse__Output as _portcullis_v1_ValidatePolicyResponse__Output } from './portcullis/v1/ValidatePolicyResponse';
import type { ValidationProblem as _portcullis_v1_ValidationProblem, ValidationProblem__Output as _portcullis_v1_ValidationProblem__Output } from './portcullis/v1/ValidationProblem';
import type { WatchPolicyRequest as _portcullis_v1_WatchPolicyRequest, WatchPolicyRequest__Output as _portcullis_v1_WatchPolicyRequest__Output } from './portcullis/v1/WatchPolicyRequest';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  portcullis: {
    v1: {
      ApplyPolicyRequest: MessageTypeDefinition<_portcullis_v1_ApplyPolicyRequest, _portcullis_v1_ApplyPolicyRequest__Output>
      ApplyPolicyResponse: MessageTypeDefinition<_portcullis_v1_ApplyPolicyResponse, _portcullis_v1_ApplyPolicyResponse__Output>
      DecideRequest: MessageTypeDefinition<_portcullis_v1_DecideRequest, _portcullis_v1_DecideRequest__Output>
      DecideResponse: MessageTypeDefinition<_portcullis_v1_DecideResponse, _portcullis_v1_DecideResponse__Output>
      DecideStreamRequest: MessageTypeDefinition<_portcullis_v1_DecideStreamRequest, _portcullis_v1_DecideStreamRequest__Output>
      DecideStreamResponse: MessageTypeDefinition<_portcullis_v1_DecideStreamResponse, _portcullis_v1_DecideStreamResponse__Output>
      ExplainRequest: MessageTypeDefinition<_portcullis_v1_ExplainRequest, _portcullis_v1_ExplainRequest__Output>
      ExplainResponse: MessageTypeDefinition<_portcullis_v1_ExplainResponse, _portcullis_v1_ExplainResponse__Output>
      GetPolicyRequest: MessageTypeDefinition<_portcullis_v1_GetPolicyRequest, _portcullis_v1_GetPolicyRequest__Output>
      HistoryEntry: MessageTypeDefinition<_portcullis_v1_HistoryEntry, _portcullis_v1_HistoryEntry__Output>
      HistoryRequest: MessageTypeDefinition<_portcullis_v1_HistoryRequest, _portcullis_v1_HistoryRequest__Output>
      HistoryResponse: MessageTypeDefinition<_portcullis_v1_HistoryResponse, _portcullis_v1_HistoryResponse__Output>
      PolicyAdmin: SubtypeConstructor<typeof grpc.Client, _portcullis_v1_PolicyAdminClient> & { service: _portcullis_v1_PolicyAdminDefinition }
      PolicyDecision: SubtypeConstructor<typeof grpc.Client, _portcullis_v1_PolicyDecisionClient> & { service: _portcullis_v1_PolicyDecisionDefinition }
      PolicyDocument: MessageTypeDefinition<_portcullis_v1_PolicyDocument, _portcullis_v1_PolicyDocument__Output>
      PolicyVersionEvent: MessageTypeDefinition<_portcullis_v1_PolicyVersionEvent, _portcullis_v1_PolicyVersionEvent__Output>
      RuleChange: MessageTypeDefinition<_portcullis_v1_RuleChange, _portcullis_v1_RuleChange__Output>
      RuleTrace: MessageTypeDefinition<_portcullis_v1_RuleTrace, _portcullis_v1_RuleTrace__Output>
      ValidatePolicyRequest: MessageTypeDefinition<_portcullis_v1_ValidatePolicyRequest, _portcullis_v1_ValidatePolicyRequest__Output>
      ValidatePolicyResponse: MessageTypeDefinition<_portcullis_v1_ValidatePolicyResponse, _portcullis_v1_ValidatePolicyResponse__Output>
      ValidationProblem: MessageTypeDefinition<_portcullis_v1_ValidationProblem, _portcullis_v1_ValidationProblem__Output>
      Verdict: EnumTypeDefinition
      WatchPolicyRequest: MessageTypeDefinition<_portcullis_v1_WatchPolicyRequest, _portcullis_v1_WatchPolicyRequest__Output>
    }
  }
}

