// Original file: proto/portcullis/v1/policy_decision.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { DecideRequest as _portcullis_v1_DecideRequest, DecideRequest__Output as _portcullis_v1_DecideRequest__Output } from '../../portcullis/v1/DecideRequest';
import type { DecideResponse as _portcullis_v1_DecideResponse, DecideResponse__Output as _portcullis_v1_DecideResponse__Output } from '../../portcullis/v1/DecideResponse';
import type { DecideStreamRequest as _portcullis_v1_DecideStreamRequest, DecideStreamRequest__Output as _portcullis_v1_DecideStreamRequest__Output } from '../../portcullis/v1/DecideStreamRequest';
import type { DecideStreamResponse as _portcullis_v1_DecideStreamResponse, DecideStreamResponse__Output as _portcullis_v1_DecideStreamResponse__Output } from '../../portcullis/v1/DecideStreamResponse';
import type { PolicyVersionEvent as _portcullis_v1_PolicyVersionEvent, PolicyVersionEvent__Output as _portcullis_v1_PolicyVersionEvent__Output } from '../../portcullis/v1/PolicyVersionEvent';
import type { WatchPolicyRequest as _portcullis_v1_WatchPolicyRequest, WatchPolicyRequest__Output as _portcullis_v1_WatchPolicyRequest__Output } from '../../portcullis/v1/WatchPolicyRequest';

export interface PolicyDecisionClient extends grpc.Client {
  Decide(argument: _portcullis_v1_DecideRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_DecideResponse__Output>): grpc.ClientUnaryCall;
  Decide(argument: _portcullis_v1_DecideRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_portcullis_v1_DecideResponse__Output>): grpc.ClientUnaryCall;
  Decide(argument: _portcullis_v1_DecideRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_DecideResponse__Output>): grpc.ClientUnaryCall;
  Decide(argument: _portcullis_v1_DecideRequest, callback: grpc.requestCallback<_portcullis_v1_DecideResponse__Output>): grpc.ClientUnaryCall;
  decide(argument: _portcullis_v1_DecideRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_DecideResponse__Output>): grpc.ClientUnaryCall;
  decide(argument: _portcullis_v1_DecideRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_portcullis_v1_DecideResponse__Output>): grpc.ClientUnaryCall;
  decide(argument: _portcullis_v1_DecideRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_portcullis_v1_DecideResponse__Output>): grpc.ClientUnaryCall;
  decide(argument: _portcullis_v1_DecideRequest, callback: grpc.requestCallback<_portcullis_v1_DecideResponse__Output>): grpc.ClientUnaryCall;
  
  DecideStream(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_portcullis_v1_DecideStreamRequest, _portcullis_v1_DecideStreamResponse__Output>;
  DecideStream(options?: grpc.CallOptions): grpc.ClientDuplexStream<_portcullis_v1_DecideStreamRequest, _portcullis_v1_DecideStreamResponse__Output>;
  decideStream(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_portcullis_v1_DecideStreamRequest, _portcullis_v1_DecideStreamResponse__Output>;
  decideStream(options?: grpc.CallOptions): grpc.ClientDuplexStream<_portcullis_v1_DecideStreamRequest, _portcullis_v1_DecideStreamResponse__Output>;
  
  WatchPolicy(argument: _portcullis_v1_WatchPolicyRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_portcullis_v1_PolicyVersionEvent__Output>;
  WatchPolicy(argument: _portcullis_v1_WatchPolicyRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_portcullis_v1_PolicyVersionEvent__Output>;
  watchPolicy(argument: _portcullis_v1_WatchPolicyRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_portcullis_v1_PolicyVersionEvent__Output>;
  watchPolicy(argument: _portcullis_v1_WatchPolicyRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_portcullis_v1_PolicyVersionEvent__Output>;
  
}

export interface PolicyDecisionHandlers extends grpc.UntypedServiceImplementation {
  Decide: grpc.handleUnaryCall<_portcullis_v1_DecideRequest__Output, _portcullis_v1_DecideResponse>;
  
  DecideStream: grpc.handleBidiStreamingCall<_portcullis_v1_DecideStreamRequest__Output, _portcullis_v1_DecideStreamResponse>;
  
  WatchPolicy: grpc.handleServerStreamingCall<_portcullis_v1_WatchPolicyRequest__Output, _portcullis_v1_PolicyVersionEvent>;
  
}

export interface PolicyDecisionDefinition extends grpc.ServiceDefinition {
  Decide: MethodDefinition<_portcullis_v1_DecideRequest, _portcullis_v1_DecideResponse, _portcullis_v1_DecideRequest__Output, _portcullis_v1_DecideResponse__Output>
  DecideStream: MethodDefinition<_portcullis_v1_DecideStreamRequest, _portcullis_v1_DecideStreamResponse, _portcullis_v1_DecideStreamRequest__Output, _portcullis_v1_DecideStreamResponse__Output>
  WatchPolicy: MethodDefinition<_portcullis_v1_WatchPolicyRequest, _portcullis_v1_PolicyVersionEvent, _portcullis_v1_WatchPolicyRequest__Output, _portcullis_v1_PolicyVersionEvent__Output>
}
