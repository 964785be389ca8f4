// gRPC clients for tests: health checks and typed Portcullis clients.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';
import { loadContracts } from '@portcullis/contracts';
import type { ApplyPolicyRequest, ApplyPolicyResponse__Output, DecideRequest, ExplainRequest, GetPolicyRequest, HistoryRequest, ValidatePolicyRequest, DecideResponse__Output, ExplainResponse__Output, HistoryResponse__Output, PolicyAdminClient, PolicyDecisionClient, PolicyDocument__Output, ValidatePolicyResponse__Output } from '@portcullis/contracts';

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

type Cb<Res> = (err: grpc.ServiceError | null, res?: Res) => void;

function promise<Res>(invoke: (opts: grpc.CallOptions, cb: Cb<Res>) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => invoke({ deadline: Date.now() + 5_000 }, (err, res) => (err || !res ? reject(err ?? new Error('empty')) : resolve(res))));
}

/** Promise-returning admin calls with the given token ('' sends none). */
export function admin(client: PolicyAdminClient, token: string) {
  const md = (): grpc.Metadata => {
    const m = new grpc.Metadata();
    if (token) m.set('authorization', `Bearer ${token}`);
    return m;
  };
  return {
    get: (req: GetPolicyRequest) => promise<PolicyDocument__Output>((o, cb) => client.GetPolicy(req, md(), o, cb)),
    apply: (req: ApplyPolicyRequest) => promise<ApplyPolicyResponse__Output>((o, cb) => client.ApplyPolicy(req, md(), o, cb)),
    validate: (req: ValidatePolicyRequest) => promise<ValidatePolicyResponse__Output>((o, cb) => client.ValidatePolicy(req, md(), o, cb)),
    explain: (req: ExplainRequest) => promise<ExplainResponse__Output>((o, cb) => client.Explain(req, md(), o, cb)),
    history: (req: HistoryRequest) => promise<HistoryResponse__Output>((o, cb) => client.History(req, md(), o, cb)),
  };
}

export function decide(client: PolicyDecisionClient, req: DecideRequest): Promise<DecideResponse__Output> {
  return promise<DecideResponse__Output>((o, cb) => client.Decide(req, o, cb));
}
