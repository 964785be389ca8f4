import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { DecideRequest as _portcullis_v1_DecideRequest, DecideRequest__Output as _portcullis_v1_DecideRequest__Output } from './portcullis/v1/DecideRequest';
import type { DecideResponse as _portcullis_v1_DecideResponse, DecideResponse__Output as _portcullis_v1_DecideResponse__Output } from './portcullis/v1/DecideResponse';
import type { DecideStreamRequest as _portcullis_v1_DecideStreamRequest, DecideStreamRequest__Output as _portcullis_v1_DecideStreamRequest__Output } from './portcullis/v1/DecideStreamRequest';
import type { DecideStreamResponse as _portcullis_v1_DecideStreamResponse, DecideStreamResponse__Output as _portcullis_v1_DecideStreamResponse__Output } from './portcullis/v1/DecideStreamResponse';
import type { PolicyDecisionClient as _portcullis_v1_PolicyDecisionClient, PolicyDecisionDefinition as _portcullis_v1_PolicyDecisionDefinition } from './portcullis/v1/PolicyDecision';
import type { PolicyVersionEvent as _portcullis_v1_PolicyVersionEvent, PolicyVersionEvent__Output as _portcullis_v1_PolicyVersionEvent__Output } from './portcullis/v1/PolicyVersionEvent';
import type { WatchPolicyRequest as _portcullis_v1_WatchPolicyRequest, WatchPolicyRequest__Output as _portcullis_v1_WatchPolicyRequest__Output } from './portcullis/v1/WatchPolicyRequest';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  portcullis: {
    v1: {
      DecideRequest: MessageTypeDefinition<_portcullis_v1_DecideRequest, _portcullis_v1_DecideRequest__Output>
      DecideResponse: MessageTypeDefinition<_portcullis_v1_DecideResponse, _portcullis_v1_DecideResponse__Output>
      DecideStreamRequest: MessageTypeDefinition<_portcullis_v1_DecideStreamRequest, _portcullis_v1_DecideStreamRequest__Output>
      DecideStreamResponse: MessageTypeDefinition<_portcullis_v1_DecideStreamResponse, _portcullis_v1_DecideStreamResponse__Output>
      PolicyDecision: SubtypeConstructor<typeof grpc.Client, _portcullis_v1_PolicyDecisionClient> & { service: _portcullis_v1_PolicyDecisionDefinition }
      PolicyVersionEvent: MessageTypeDefinition<_portcullis_v1_PolicyVersionEvent, _portcullis_v1_PolicyVersionEvent__Output>
      Verdict: EnumTypeDefinition
      WatchPolicyRequest: MessageTypeDefinition<_portcullis_v1_WatchPolicyRequest, _portcullis_v1_WatchPolicyRequest__Output>
    }
  }
}

