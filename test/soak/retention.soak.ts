// Soak: nothing is retained per connection. RSS of a process says little about that (V8 and malloc
// give memory back when they like), so this runs the edge in-process and weighs its JS heap after
// full collections (the soak runs with --expose-gc): floods of silent, slow-drip, garbage and
// relayed short connections, twice, must leave the heap where the warm-up left it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEdgeProxy } from '@portcullis/edge';
import type { EdgeHandle } from '@portcullis/edge';
import type { FlowTransport } from '@portcullis/flow-events';
import { parseConfig } from '@portcullis/platform';
import { MemoryPolicyStore, MemoryVerdictCache, startPolicyService } from '@portcullis/policy';
import type { PolicyServiceHandle } from '@portcullis/policy';
import { waitFor } from '@portcullis/testing';
import { captureHello } from '../support/hello';
import { dripConn, MB, prng, randomBytes, scriptedUpstream, sendConn, shortFlowHellos, shortFlows, silentConn, sleep } from './support/hostile';
import type { HostileConn } from './support/hostile';
import { listenOverflows, listenQueueMax, report, scaled } from './support/soak';

const PROFILE = `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: soak-retention
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: short
    action: allow
    fqdns: [".short.test"]
    allowPrivate: ["127.0.0.0/8"]
`;

/** A flow stream that takes every event and keeps none (the heap must not hold them either). */
class CountingTransport implements FlowTransport {
  readonly kind = 'memory' as const;
  events = 0;
  async add(data: string[]): Promise<void> {
    this.events += data.length;
  }
  async ensureGroup(): Promise<void> {}
  async read(): Promise<never[]> {
    return [];
  }
  async readOwnPending(): Promise<never[]> {
    return [];
  }
  async claimIdle(): Promise<never[]> {
    return [];
  }
  async ack(): Promise<void> {}
  async groupInfo(): Promise<{ lag: number; pending: number }> {
    return { lag: 0, pending: 0 };
  }
  async close(): Promise<void> {}
}

function fullGc(): void {
  const gc = (globalThis as { gc?: (opts?: unknown) => void }).gc;
  if (!gc) throw new Error('run with --expose-gc (test/soak/vitest.config.mts does)');
  for (let i = 0; i < 4; i++) gc();
}

describe('soak: nothing retained per connection (in-process heap)', () => {
  let dir: string;
  let raw: Awaited<ReturnType<typeof scriptedUpstream>>;
  let policy: PolicyServiceHandle;
  let edge: EdgeHandle;
  const transport = new CountingTransport();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-retention-'));
    writeFileSync(join(dir, 'profile.yaml'), PROFILE);
    raw = await scriptedUpstream();
    const config = parseConfig({
      policy: { listen: '127.0.0.1:0', profile: join(dir, 'profile.yaml') },
      edge: { nodeId: 'edge-heap', listeners: [{ name: 'tls', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: raw.port }], resolve: Object.fromEntries(['srv-end', 'cli-end', 'srv-reset', 'mute'].map((n) => [`${n}.short.test`, ['127.0.0.1']])), sniffTimeoutMs: 1_000, maxConnectionsPerSource: 1_000_000, spoolDir: '' },
    });
    const log = pino({ level: 'silent' });
    policy = await startPolicyService(config, { log, store: new MemoryPolicyStore(), cache: new MemoryVerdictCache() });
    edge = await startEdgeProxy(config, { log, transport, policyAddress: `127.0.0.1:${policy.port}` });
  });
  afterAll(async () => {
    await edge?.stop();
    await policy?.stop();
    for (const s of raw?.sockets ?? []) s.destroy();
    raw?.server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`two rounds of ${scaled(1_000)} silent + ${scaled(1_000)} slow-drip + ${scaled(1_000)} garbage + ${scaled(1_000)} relayed short connections leave the heap where it was`, async () => {
    const N = scaled(1_000);
    const port = edge.listeners['tls']?.port as number;
    const hellos = await shortFlowHellos(captureHello);
    const short = shortFlows({ sni: port, upstream: raw.port }, hellos);
    const rand = prng(42);
    // The edge shares this process's event loop, so it accepts late while the clients connect: a
    // batch must fit the listen queue (somaxconn caps it), or the kernel drops connections before
    // any accept() and, with SYN cookies, a silent client stays "connected" to nothing for ever.
    const batch = Math.max(10, Math.min(250, Math.floor(listenQueueMax() / 2 / 3)));
    const overflowsBefore = listenOverflows();
    /** every connection closes within the sniff timeout plus slack; never wait for ever */
    const allClosed = async (conns: HostileConn[], what: string): Promise<void> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const open = conns.filter((c) => !c.socket.destroyed).length;
          reject(new Error(`${open} of ${conns.length} ${what} connections still open after 30 s (listen-queue overflows meanwhile: ${listenOverflows() - overflowsBefore})`));
        }, 30_000);
      });
      try {
        await Promise.race([Promise.all(conns.map((c) => c.closed)), timeout]);
      } finally {
        clearTimeout(timer);
      }
    };
    const round = async (): Promise<void> => {
      const conns: HostileConn[] = [];
      for (let i = 0; i < N; i += batch) {
        const part: HostileConn[] = [];
        for (let k = i; k < Math.min(N, i + batch); k++) part.push(silentConn(port), dripConn(port, hellos['cli-end'] as Buffer, 100), sendConn(port, [randomBytes(rand, 1 + Math.floor(rand() * 300))], k % 2 ? 'end' : 'hold'));
        await Promise.all(part.map((c) => c.connected));
        conns.push(...part);
      }
      for (let i = 0; i < N; i++) {
        const c = (short[i % short.length] as (typeof short)[number]).run();
        await allClosed([c], 'short');
      }
      await allClosed(conns, 'silent, slow-drip and garbage');
      await waitFor(() => edge.activeFlows() === 0, 10_000);
      await sleep(2_500); // the 2 s linger after a refusal
    };
    await round(); // warm-up: JIT, pools, caches reach their working size
    fullGc();
    const before = process.memoryUsage();
    const eventsBefore = transport.events;
    await round();
    await round();
    fullGc();
    const after = process.memoryUsage();
    const connections = 2 * 4 * N;
    const figures = {
      connections,
      events: transport.events - eventsBefore,
      heapUsed: { before: +(before.heapUsed / MB).toFixed(2), after: +(after.heapUsed / MB).toFixed(2) },
      external: { before: +(before.external / MB).toFixed(2), after: +(after.external / MB).toFixed(2) },
      arrayBuffers: { before: +(before.arrayBuffers / MB).toFixed(2), after: +(after.arrayBuffers / MB).toFixed(2) },
      retainedBytesPerConnection: +((after.heapUsed + after.external - before.heapUsed - before.external) / connections).toFixed(1),
    };
    report('retention: in-process heap after two rounds', figures);

    expect(transport.events - eventsBefore).toBe(2 * connections);
    // under 128 bytes per connection, with 1 MiB for the test's own bookkeeping
    expect(after.heapUsed + after.external - before.heapUsed - before.external).toBeLessThan(connections * 128 + MB);
  });
});
