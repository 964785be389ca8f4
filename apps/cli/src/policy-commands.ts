// `portcullis policy …`: validate offline, or talk to the PolicyAdmin API over gRPC.
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { compileProfile, parseProfileText } from '@portcullis/fqdn-policy';
import { loadContracts } from '@portcullis/contracts';
import type { ApplyPolicyResponse__Output, ExplainResponse__Output, HistoryResponse__Output, PolicyAdminClient, PolicyDocument__Output, ValidationProblem } from '@portcullis/contracts';
import { bearer, clientChannel, loadConfigFile } from '@portcullis/platform';
import type { TlsFiles } from '@portcullis/platform';
import { opt, UsageError } from './args';
import type { Args } from './args';

const TIMEOUT_MS = 10_000;

function adminClient(args: Args): { client: PolicyAdminClient; md: grpc.Metadata } {
  let server = opt(args, 'server');
  let token = opt(args, 'token') ?? process.env['PORTCULLIS_ADMIN_TOKEN'];
  let tls: TlsFiles | undefined;
  const ca = opt(args, 'ca');
  if (ca) tls = { ca, cert: opt(args, 'cert'), key: opt(args, 'key'), serverName: opt(args, 'server-name') };
  const configPath = opt(args, 'config');
  if (configPath) {
    const config = loadConfigFile(configPath);
    server ??= config.policy.listen;
    token ??= config.policy.adminToken;
    tls ??= config.grpcTls;
  }
  if (!server) throw new UsageError('say where the policy service is: --config FILE or --server HOST:PORT --token TOKEN');
  const { PolicyAdmin } = loadContracts().portcullis.v1;
  const channel = clientChannel(tls);
  return { client: new PolicyAdmin(server, channel.credentials, channel.options), md: bearer(token ?? '') };
}

type Callback<Res> = (err: grpc.ServiceError | null, res?: Res) => void;

/** One unary admin call with a deadline. */
function call<Res>(invoke: (opts: grpc.CallOptions, cb: Callback<Res>) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => invoke({ deadline: Date.now() + TIMEOUT_MS }, (err, res) => (err || !res ? reject(err ?? new Error('empty reply')) : resolve(res))));
}

function printProblems(problems: ValidationProblem[]): void {
  for (const p of problems) console.log(`  ${p.path || '(profile)'}: ${p.message}${p.fix ? `  → ${p.fix}` : ''}`);
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

function readFile(path: string | undefined): string {
  if (!path) throw new UsageError('name the profile file');
  return readFileSync(path, 'utf8');
}

function printApply(r: ApplyPolicyResponse__Output, dryRun: boolean): number {
  if (!r.valid) {
    console.log('refused: the profile is invalid');
    printProblems(r.problems);
    return 1;
  }
  if (r.problems.length) {
    console.log('warnings:');
    printProblems(r.problems);
  }
  if (r.diff.length) console.log(table([['RULE', 'CHANGE', 'DETAIL'], ...r.diff.map((d) => [d.rule_id || '(profile)', d.change, d.detail])]));
  else console.log('no rule changes');
  console.log(dryRun ? `dry run: valid; would replace version ${r.version}` : `applied: version ${r.version}`);
  return 0;
}

/** Returns the process exit code. */
export async function policyCommand(args: Args): Promise<number> {
  const [, sub, arg] = args.positionals;
  if (sub === 'validate') {
    const parsed = parseProfileText(readFile(arg));
    if (!parsed.ok) {
      console.log(`invalid: ${parsed.problems.length} problem(s)`);
      printProblems(parsed.problems.map((p) => ({ ...p, fix: p.fix ?? '' })));
      return 1;
    }
    const compiled = compileProfile(parsed.profile);
    if (parsed.warnings.length) printProblems(parsed.warnings.map((p) => ({ ...p, fix: p.fix ?? '' })));
    console.log(`valid: profile "${parsed.profile.name}", ${parsed.profile.rules.length} rules, ${compiled.nameCount} names, mode ${parsed.profile.mode}`);
    return 0;
  }
  const { client, md } = adminClient(args);
  try {
    switch (sub) {
      case 'apply':
      case 'diff': {
        const dryRun = sub === 'diff' || args.options['dry-run'] === true;
        const req = { content: readFile(arg), dry_run: dryRun, comment: opt(args, 'comment') ?? '', author: opt(args, 'author') ?? process.env['USER'] ?? '' };
        const r = await call<ApplyPolicyResponse__Output>((o, cb) => client.ApplyPolicy(req, md, o, cb));
        return printApply(r, dryRun);
      }
      case 'rollback': {
        const version = Number(arg);
        if (!Number.isInteger(version) || version < 1) throw new UsageError('policy rollback VERSION');
        const req = { rollback_to_version: version, comment: opt(args, 'comment') ?? '', author: process.env['USER'] ?? '' };
        const r = await call<ApplyPolicyResponse__Output>((o, cb) => client.ApplyPolicy(req, md, o, cb));
        return printApply(r, false);
      }
      case 'get': {
        const req = { version: Number(opt(args, 'version') ?? 0) };
        const r = await call<PolicyDocument__Output>((o, cb) => client.GetPolicy(req, md, o, cb));
        console.log(`# version ${r.version} · ${r.profile_name} · applied ${r.applied_at} by ${r.applied_by}${r.comment ? ` · ${r.comment}` : ''}`);
        console.log(r.content.trimEnd());
        return 0;
      }
      case 'history': {
        const req = { limit: Number(opt(args, 'limit') ?? 20) };
        const r = await call<HistoryResponse__Output>((o, cb) => client.History(req, md, o, cb));
        console.log(table([['VERSION', 'APPLIED', 'BY', 'RULES', 'COMMENT'], ...r.entries.map((e) => [String(e.version), e.applied_at, e.applied_by, String(e.rule_count), e.comment])]));
        return 0;
      }
      case 'explain': {
        if (!arg) throw new UsageError('policy explain NAME [--port P] [--source IP]');
        const req = { name: arg, port: Number(opt(args, 'port') ?? 443), source_ip: opt(args, 'source') ?? '', ech: false };
        const r = await call<ExplainResponse__Output>((o, cb) => client.Explain(req, md, o, cb));
        const d = r.decision;
        console.log(table([['#', 'RULE', 'ACTION', 'MATCH', 'WHY'], ...r.rules.map((t) => [String(t.index), t.rule_id, t.action, t.matched ? 'yes' : 'no', t.detail])]));
        console.log(`${r.normalized_name || arg}: ${d?.verdict === 'VERDICT_ALLOW' ? 'allow' : 'deny'} (${d?.reason}${d?.rule_id ? `, rule ${d.rule_id}` : ''}) — ${d?.detail} [policy version ${d?.policy_version}]`);
        return 0;
      }
      default:
        throw new UsageError(`unknown policy command "${sub ?? ''}"`);
    }
  } catch (err) {
    const e = err as grpc.ServiceError;
    if (e.code !== undefined) {
      console.error(`error: ${grpc.status[e.code] ?? e.code}: ${e.details}`);
      return 1;
    }
    throw err;
  } finally {
    client.close();
  }
}
