// gRPC clients for tests: health checks and typed Portcullis clients.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';
import { loadContracts } from '@portcullis/contracts';
import type { PolicyAdminClient, PolicyDecisionClient } from '@portcullis/contracts';

export function decisionClient(address: string): PolicyDecisionClient {
  const { PolicyDecision } = loadContracts().portcullis.v1;
  return new PolicyDecision(address, grpc.credentials.createInsecure());
}

export function adminClient(address: string): PolicyAdminClient {
  const { PolicyAdmin } = loadContracts().portcullis.v1;
  return new PolicyAdmin(address, grpc.credentials.createInsecure());
}

interface HealthClient extends grpc.Client {
  Check(req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
}

export async function healthStatus(address: string, service = ''): Promise<string> {
  const def = protoLoader.loadSync(protoPath, { keepCase: true, enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: new (a: string, c: grpc.ChannelCredentials) => HealthClient } } } };
  const client = new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) => client.Check({ service }, { deadline: Date.now() + 2_000 }, (err, res) => (err ? reject(err) : resolve(res?.status ?? ''))));
  } finally {
    client.close();
  }
}

/** Promisifies one unary call with a deadline. */
export function unary<Req, Res>(
  fn: (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown,
  self: unknown,
  req: Req,
  md: grpc.Metadata = new grpc.Metadata(),
): Promise<Res> {
  return new Promise((resolve, reject) => fn.call(self, req, md, { deadline: Date.now() + 5_000 }, (err, res) => (err || !res ? reject(err ?? new Error('empty')) : resolve(res))));
}
