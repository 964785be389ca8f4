// PolicyAdmin: validate, apply (atomic, with dry run and diff), rollback, history, explain.
// Every call needs `authorization: Bearer <policy.adminToken>`.
import * as grpc from '@grpc/grpc-js';
import { timingSafeEqual } from 'node:crypto';
import { compileProfile, diffProfiles, parseProfileText } from '@portcullis/fqdn-policy';
import type { ValidationProblem as EngineProblem } from '@portcullis/fqdn-policy';
import type { PolicyAdminHandlers, PolicyDocument, ValidationProblem } from '@portcullis/contracts';
import { grpcError } from '@portcullis/platform';
import type { Logger } from '@portcullis/platform';
import { sha256 } from './active-policy';
import type { ActivePolicy } from './active-policy';
import { toResponse } from './decision';
import type { PolicyStore, StoredPolicy } from './store';

function problems(list: EngineProblem[]): ValidationProblem[] {
  return list.map((p) => ({ path: p.path, message: p.message, fix: p.fix ?? '' }));
}

function document(p: StoredPolicy): PolicyDocument {
  return { version: p.version, content: p.content, profile_name: p.profileName, applied_by: p.appliedBy, applied_at: p.appliedAt, comment: p.comment, sha256: p.sha256 };
}

/** Constant-time comparison of the bearer token. */
export function checkToken(metadata: grpc.Metadata, token: string | undefined): boolean {
  if (!token) return false;
  const header = metadata.get('authorization')[0];
  if (typeof header !== 'string') return false;
  const given = Buffer.from(header);
  const want = Buffer.from(`Bearer ${token}`);
  // Compare equal-length buffers so the time does not depend on where they differ.
  const padded = Buffer.alloc(want.length);
  given.copy(padded, 0, 0, want.length);
  return timingSafeEqual(padded, want) && given.length === want.length;
}

type Call = { metadata: grpc.Metadata; getPeer(): string };

export function adminHandlers(opts: { store: PolicyStore; active: ActivePolicy; adminToken: string | undefined; log: Logger; verdictTtlMs: number }): PolicyAdminHandlers {
  const { store, active, log } = opts;

  const guard = (call: Call, method: string): grpc.ServiceError | undefined => {
    if (!opts.adminToken) {
      log.warn({ method, peer: call.getPeer() }, 'admin.refused: policy.adminToken is not set');
      return grpcError(grpc.status.PERMISSION_DENIED, 'admin API disabled: set policy.adminToken');
    }
    if (!checkToken(call.metadata, opts.adminToken)) {
      log.warn({ method, peer: call.getPeer() }, 'admin.refused: missing or wrong token');
      return grpcError(grpc.status.UNAUTHENTICATED, 'missing or wrong admin token');
    }
    return undefined;
  };

  const fail = (err: unknown): grpc.ServiceError => {
    log.error({ err }, 'admin call failed');
    return grpcError(grpc.status.UNAVAILABLE, `policy store unavailable: ${(err as Error).message}`);
  };

  return {
    GetPolicy(call, cb) {
      const denied = guard(call, 'GetPolicy');
      if (denied) return cb(denied);
      const v = call.request.version;
      (v ? store.get(v) : store.current()).then(
        (p) => (p ? cb(null, document(p)) : cb(grpcError(grpc.status.NOT_FOUND, v ? `version ${v} is not in the history` : 'no policy applied yet'))),
        (err) => cb(fail(err)),
      );
    },

    ValidatePolicy(call, cb) {
      const denied = guard(call, 'ValidatePolicy');
      if (denied) return cb(denied);
      const parsed = parseProfileText(call.request.content);
      if (!parsed.ok) return cb(null, { valid: false, problems: problems(parsed.problems), rule_count: 0, name_count: 0 });
      const compiled = compileProfile(parsed.profile);
      cb(null, { valid: true, problems: problems(parsed.warnings), rule_count: parsed.profile.rules.length, name_count: compiled.nameCount });
    },

    ApplyPolicy(call, cb) {
      const denied = guard(call, 'ApplyPolicy');
      if (denied) return cb(denied);
      const req = call.request;
      void (async () => {
        let content = req.content;
        let comment = req.comment;
        if (req.rollback_to_version) {
          const old = await store.get(req.rollback_to_version);
          if (!old) return cb(grpcError(grpc.status.NOT_FOUND, `version ${req.rollback_to_version} is not in the history`));
          content = old.content;
          comment = comment || `rollback to version ${old.version}`;
        }
        const parsed = parseProfileText(content);
        const cur = active.current;
        if (!parsed.ok) {
          log.warn({ problems: parsed.problems.length, dryRun: req.dry_run }, 'policy.refused');
          return cb(null, { valid: false, applied: false, version: cur?.version ?? 0, problems: problems(parsed.problems), diff: [] });
        }
        const diff = diffProfiles(cur?.compiled.profile, parsed.profile).map((c) => ({ rule_id: c.ruleId, change: c.change, detail: c.detail }));
        if (req.dry_run) return cb(null, { valid: true, applied: false, version: cur?.version ?? 0, problems: problems(parsed.warnings), diff });
        const stored = await store.apply({
          content,
          profileName: parsed.profile.name,
          appliedBy: req.author || call.getPeer(),
          appliedAt: new Date().toISOString(),
          comment,
          sha256: sha256(content),
          ruleCount: parsed.profile.rules.length,
        });
        if (!stored) throw new Error('store refused the apply');
        await active.refresh();
        log.info({ policyVersion: stored.version, profile: stored.profileName, appliedBy: stored.appliedBy, changes: diff.length }, 'policy.applied');
        cb(null, { valid: true, applied: true, version: stored.version, problems: problems(parsed.warnings), diff });
      })().catch((err: unknown) => cb(fail(err)));
    },

    History(call, cb) {
      const denied = guard(call, 'History');
      if (denied) return cb(denied);
      store.history(call.request.limit || 20).then(
        (list) =>
          cb(null, {
            entries: list.map((p) => ({ version: p.version, profile_name: p.profileName, applied_by: p.appliedBy, applied_at: p.appliedAt, comment: p.comment, sha256: p.sha256, rule_count: p.ruleCount })),
          }),
        (err) => cb(fail(err)),
      );
    },

    Explain(call, cb) {
      const denied = guard(call, 'Explain');
      if (denied) return cb(denied);
      const cur = active.current;
      if (!cur) return cb(grpcError(grpc.status.UNAVAILABLE, 'no policy loaded'));
      const r = call.request;
      const out = cur.compiled.explain({ name: r.name || undefined, port: r.port || 443, sourceIp: r.source_ip || undefined, ech: r.ech });
      cb(null, {
        normalized_name: out.normalizedName,
        decision: toResponse(out.decision, cur.version, opts.verdictTtlMs, false),
        rules: out.rules.map((t) => ({ rule_id: t.ruleId, index: t.index, matched: t.matched, action: t.action, detail: t.detail })),
      });
    },
  };
}
