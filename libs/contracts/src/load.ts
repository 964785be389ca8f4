// The one place the gRPC contracts are loaded; everything else imports the typed result.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { ProtoGrpcType as AdminProto } from './generated/policy_admin';
import type { ProtoGrpcType as DecisionProto } from './generated/policy_decision';

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

type Contracts = AdminProto & DecisionProto;
let cached: Contracts | undefined;

export function loadContracts(): Contracts {
  if (cached) return cached;
  const definition = protoLoader.loadSync(PROTO_FILES, { ...LOADER_OPTIONS, includeDirs: [findProtoDir()] });
  // The single cast: proto-loader returns an untyped package; the generated types describe it.
  cached = grpc.loadPackageDefinition(definition) as unknown as Contracts;
  return cached;
}
