// An in-process stack for integration tests: a real policy service (gRPC on port 0) and a real
// edge (TCP listeners on port 0), sharing an in-memory flow stream the test can read.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startEdgeProxy } from '@portcullis/edge';
import type { EdgeHandle } from '@portcullis/edge';
import { decodeFlowEvent, MemoryFlowTransport } from '@portcullis/flow-events';
import type { FlowEvent } from '@portcullis/flow-events';
import { parseConfig } from '@portcullis/platform';
import { MemoryPolicyStore, MemoryVerdictCache, startPolicyService } from '@portcullis/policy';
import type { PolicyServiceHandle } from '@portcullis/policy';

export interface Stack {
  edge: EdgeHandle;
  policy: PolicyServiceHandle;
  port(listener?: string): number;
  /** every flow event published so far */
  events(): Promise<FlowEvent[]>;
  stop(): Promise<void>;
}

export async function startStack(profile: string, edge: Record<string, unknown>, policyConfig: Record<string, unknown> = {}, top: Record<string, unknown> = {}): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-stack-'));
  writeFileSync(join(dir, 'profile.yaml'), profile);
  const config = parseConfig({
    policy: { listen: '127.0.0.1:0', profile: join(dir, 'profile.yaml'), adminToken: 'stack-token', ...policyConfig },
    edge: { listeners: [{ name: 'tls', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: 443 }], drainTimeoutMs: 500, spoolDir: join(dir, 'spool'), ...edge },
    audit: { log: join(dir, 'audit.log') },
    ...top,
  });
  const log = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
  const transport = new MemoryFlowTransport();
  const policy = await startPolicyService(config, { log, store: new MemoryPolicyStore(), cache: new MemoryVerdictCache() });
  const edgeHandle = await startEdgeProxy(config, { log, transport, policyAddress: `127.0.0.1:${policy.port}` }).catch(async (err: unknown) => {
    await policy.stop(); // an edge that cannot start (a port taken) leaves nothing running
    throw err;
  });
  await transport.ensureGroup();
  const seen: FlowEvent[] = [];
  return {
    edge: edgeHandle,
    policy,
    port: (listener = 'tls') => edgeHandle.listeners[listener]?.port ?? 0,
    events: async () => {
      for (const e of await transport.read('test', 100_000, 0)) {
        const r = decodeFlowEvent(e.data);
        if (!r.ok) throw new Error(`invalid flow event: ${r.error}`);
        seen.push(r.event);
      }
      return seen;
    },
    stop: async () => {
      await edgeHandle.stop();
      await policy.stop();
    },
  };
}
