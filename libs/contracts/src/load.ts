// The one place the gRPC contracts are loaded; everything else imports the typed result.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { ProtoGrpcType as AdminProto } from './generated/policy_admin';
import type { ProtoGrpcType as DecisionProto } from './generated/policy_decision';
import {
  decodeDecideRequest,
  decodeDecideResponse,
  decodeDecideStreamRequest,
  decodeDecideStreamResponse,
  encodeDecideRequest,
  encodeDecideResponse,
  encodeDecideStreamRequest,
  encodeDecideStreamResponse,
} from './decide-codec';

export const PROTO_FILES = ['portcullis/v1/policy_decision.proto', 'portcullis/v1/policy_admin.proto'];

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** Finds proto/ by walking up from the bundle (dist/apps/x) or the source tree. */
export function findProtoDir(): string {
  const starts = [typeof __dirname === 'string' ? __dirname : process.cwd(), process.cwd()];
  for (const start of starts) {
    let dir = resolve(start);
    for (;;) {
      const candidate = join(dir, 'proto');
      if (existsSync(join(candidate, PROTO_FILES[0] as string))) return candidate;
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  throw new Error('proto/portcullis/v1 not found above ' + starts.join(', '));
}

/**
 * DecideStream request/response headers: the service reads and the client reads batched
 * decisions (DecideStreamRequest.batch, DecideStreamResponse.batch). Each side batches only
 * towards a peer that sent it, so either side may predate batches.
 */
export const DECIDE_BATCH_HEADER = 'portcullis-decide-batch';

type Codec = { encode(m: never): Buffer | undefined; decode(b: Buffer): unknown };
type Method = { requestSerialize(m: unknown): Buffer; requestDeserialize(b: Buffer): unknown; responseSerialize(m: unknown): Buffer; responseDeserialize(b: Buffer): unknown };

/**
 * Puts the hand-written codec (decide-codec.ts) on the decision methods, for clients and servers
 * alike. Encoding falls back to protobufjs for values it does not take (a Long, a numeric string).
 */
function installDecideCodec(definition: protoLoader.PackageDefinition): void {
  const service = definition['portcullis.v1.PolicyDecision'] as unknown as Record<string, Method>;
  const put = (method: Method | undefined, req: Codec, res: Codec): void => {
    if (!method) throw new Error('policy_decision.proto: PolicyDecision method missing');
    const reqFallback = method.requestSerialize;
    const resFallback = method.responseSerialize;
    method.requestSerialize = (m) => req.encode(m as never) ?? reqFallback(m);
    method.requestDeserialize = req.decode;
    method.responseSerialize = (m) => res.encode(m as never) ?? resFallback(m);
    method.responseDeserialize = res.decode;
  };
  put(service['Decide'], { encode: encodeDecideRequest, decode: decodeDecideRequest }, { encode: encodeDecideResponse, decode: decodeDecideResponse });
  put(service['DecideStream'], { encode: encodeDecideStreamRequest, decode: decodeDecideStreamRequest }, { encode: encodeDecideStreamResponse, decode: decodeDecideStreamResponse });
}

type Contracts = AdminProto & DecisionProto;
let cached: Contracts | undefined;

export function loadContracts(): Contracts {
  if (cached) return cached;
  const definition = protoLoader.loadSync(PROTO_FILES, { ...LOADER_OPTIONS, includeDirs: [findProtoDir()] });
  installDecideCodec(definition);
  // The single cast: proto-loader returns an untyped package; the generated types describe it.
  cached = grpc.loadPackageDefinition(definition) as unknown as Contracts;
  return cached;
}
