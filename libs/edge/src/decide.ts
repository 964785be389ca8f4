// The edge's decision client: L1 cache tagged with the policy version, one in-flight call per
// key shared by concurrent flows, a deadline on every call, and WatchPolicy to drop stale entries.
import * as grpc from '@grpc/grpc-js';
import { LRUCache } from 'lru-cache';
import { loadContracts } from '@portcullis/contracts';
import type { DecideRequest, DecideResponse__Output, PolicyDecisionClient, PolicyVersionEvent__Output } from '@portcullis/contracts';
import { CLIENT_OPTIONS } from '@portcullis/platform';
import type { Logger } from '@portcullis/platform';

export interface Verdict {
  verdict: 'allow' | 'deny';
  ruleId: string;
  reason: string;
  detail: string;
  policyVersion: number;
  wouldDeny: boolean;
  allowPrivate: string[];
  /** Where the verdict came from: l1 | service | fail-closed | fail-open */
  source: 'l1' | 'service' | 'fail-closed' | 'fail-open';
}

export interface DecideInput {
  sni: string;
  connectHost: string;
  port: number;
  sourceIp: string;
  protocol: string;
  ech: boolean;
  echGrease: boolean;
  noNameReason: string;
  listener: string;
  flowId: string;
}

interface L1Entry {
  verdict: Verdict;
  version: number;
  expires: number;
}

function fromResponse(r: DecideResponse__Output): Verdict {
  return {
    verdict: r.verdict === 'VERDICT_ALLOW' ? 'allow' : 'deny',
    ruleId: r.rule_id,
    reason: r.reason,
    detail: r.detail,
    policyVersion: r.policy_version,
    wouldDeny: r.would_deny,
    allowPrivate: r.allow_private,
    source: 'service',
  };
}

export class DecisionClient {
  private readonly client: PolicyDecisionClient;
  private readonly l1: LRUCache<string, L1Entry>;
  private readonly inflight = new Map<string, Promise<Verdict>>();
  private version = 0;
  private watch: grpc.ClientReadableStream<PolicyVersionEvent__Output> | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private closed = false;
  readonly stats = { l1Hits: 0, l1Misses: 0, calls: 0, failures: 0 };

  constructor(
    private readonly opts: { address: string; nodeId: string; decideTimeoutMs: number; l1Size: number; failMode: 'closed' | 'open'; log: Logger },
  ) {
    const { PolicyDecision } = loadContracts().portcullis.v1;
    this.client = new PolicyDecision(opts.address, grpc.credentials.createInsecure(), CLIENT_OPTIONS);
    this.l1 = new LRUCache({ max: Math.max(1, opts.l1Size) });
  }

  get policyVersion(): number {
    return this.version;
  }

  start(): void {
    this.openWatch();
  }

  private openWatch(): void {
    if (this.closed) return;
    const stream = this.client.WatchPolicy({ node_id: this.opts.nodeId });
    this.watch = stream;
    stream.on('data', (e: PolicyVersionEvent__Output) => this.onVersion(e.version));
    const retry = (): void => {
      if (this.closed || this.watch !== stream) return;
      this.watch = undefined;
      this.watchTimer = setTimeout(() => this.openWatch(), 500);
    };
    stream.on('error', retry);
    stream.on('end', retry);
  }

  private onVersion(version: number): void {
    if (version === this.version) return;
    this.opts.log.info({ policyVersion: version, previous: this.version }, 'policy.version');
    this.version = version;
    this.l1.clear();
  }

  private key(i: DecideInput): string {
    return `${i.connectHost || i.sni}|${i.port}|${i.sourceIp}|${i.ech ? (i.echGrease ? 'g' : 'e') : ''}|${i.connectHost || i.sni ? '' : i.noNameReason}`;
  }

  async decide(input: DecideInput): Promise<Verdict> {
    const key = this.key(input);
    const hit = this.l1.get(key);
    if (hit && hit.expires > Date.now() && hit.version >= this.version) {
      this.stats.l1Hits++;
      return { ...hit.verdict, source: 'l1' };
    }
    this.stats.l1Misses++;
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const p = this.call(input, key).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private call(input: DecideInput, key: string): Promise<Verdict> {
    this.stats.calls++;
    const req: DecideRequest = {
      sni: input.sni,
      connect_host: input.connectHost,
      port: input.port,
      source_ip: input.sourceIp,
      protocol: input.protocol,
      ech: input.ech,
      ech_grease: input.echGrease,
      node_id: this.opts.nodeId,
      listener: input.listener,
      flow_id: input.flowId,
      no_name_reason: input.noNameReason,
    };
    return new Promise((resolve) => {
      this.client.Decide(req, { deadline: Date.now() + this.opts.decideTimeoutMs }, (err, res) => {
        if (err || !res) {
          this.stats.failures++;
          this.opts.log.warn({ code: err?.code, details: err?.details }, 'decide failed');
          resolve(this.failVerdict());
          return;
        }
        const verdict = fromResponse(res);
        if (verdict.policyVersion > this.version) this.onVersion(verdict.policyVersion);
        if (res.cache_ttl_ms > 0 && verdict.policyVersion >= this.version) {
          this.l1.set(key, { verdict, version: verdict.policyVersion, expires: Date.now() + res.cache_ttl_ms });
        }
        resolve(verdict);
      });
    });
  }

  private failVerdict(): Verdict {
    const open = this.opts.failMode === 'open';
    return {
      verdict: open ? 'allow' : 'deny',
      ruleId: '',
      reason: open ? 'fail-open' : 'policy-unavailable',
      detail: open ? 'no verdict could be had; failMode open' : 'no verdict could be had; failMode closed',
      policyVersion: this.version,
      wouldDeny: false,
      allowPrivate: [],
      source: open ? 'fail-open' : 'fail-closed',
    };
  }

  close(): void {
    this.closed = true;
    if (this.watchTimer) clearTimeout(this.watchTimer);
    this.watch?.cancel();
    this.client.close();
  }
}
