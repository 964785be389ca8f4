// startEdgeProxy(config): the listeners, the decision client and the flow-event publisher.
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { FlowPublisher, RedisFlowTransport } from '@portcullis/flow-events';
import type { FlowEnd, FlowStart, FlowTransport } from '@portcullis/flow-events';
import { connectRedis, splitHostPort } from '@portcullis/platform';
import type { Logger, PortcullisConfig } from '@portcullis/platform';
import { DnsCache } from './connect';
import { DecisionClient } from './decide';
import { SsrfGuard } from './ssrf';
import { handleFlow } from './flow';

export interface EdgeHandle {
  /** listener name → bound address */
  listeners: Record<string, { host: string; port: number }>;
  decider: DecisionClient;
  publisher: FlowPublisher;
  activeFlows(): number;
  stop(): Promise<void>;
}

export interface EdgeDeps {
  log: Logger;
  /** Embedded mode passes the in-memory stream; otherwise Redis from config.redis.url. */
  transport?: FlowTransport;
  /** Overrides edge.policyService (the embedded stack binds the policy service on port 0). */
  policyAddress?: string;
}

export async function startEdgeProxy(config: Readonly<PortcullisConfig>, deps: EdgeDeps): Promise<EdgeHandle> {
  const log = deps.log;
  const edge = config.edge;
  let transport = deps.transport;
  if (!transport) {
    if (!config.redis.url) throw new Error('edge-proxy needs redis.url (or run `portcullis run all` for the embedded stack)');
    const redis = connectRedis(config.redis.url, { maxRetriesPerRequest: 1 });
    redis.on('error', (err) => log.warn({ err: err.message }, 'redis error'));
    transport = new RedisFlowTransport(redis, { maxLen: config.stream.maxLen });
    const close = transport.close.bind(transport);
    transport.close = async () => {
      await close();
      redis.disconnect();
    };
  }
  let droppedLogged = 0;
  const publisher = new FlowPublisher(transport, {
    maxQueue: edge.eventQueueSize,
    onError: (err, queued) => log.warn({ err: (err as Error).message, queued }, 'flow events not yet written; retrying'),
    onDrop: () => {
      const now = Date.now();
      if (now - droppedLogged > 10_000) {
        droppedLogged = now;
        log.error({ dropped: publisher.stats.dropped }, 'flow event queue full: events dropped');
      }
    },
  });
  const decider = new DecisionClient({ address: deps.policyAddress ?? edge.policyService, nodeId: edge.nodeId, decideTimeoutMs: edge.decideTimeoutMs, l1Size: edge.l1CacheSize, failMode: edge.failMode, log });
  decider.start();

  const guard = new SsrfGuard({ allowPrivate: edge.allowPrivate });
  const dns = new DnsCache({ maxEntries: Math.max(1, edge.dnsCacheSize), maxTtlMs: edge.dnsMaxTtlMs, negativeTtlMs: 5_000 });
  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  let flows = 0;
  const servers: Server[] = [];
  const listeners: EdgeHandle['listeners'] = {};
  for (const listener of edge.listeners) {
    const ctx = {
      nodeId: edge.nodeId,
      listener,
      sniffTimeoutMs: edge.sniffTimeoutMs,
      connectTimeoutMs: edge.connectTimeoutMs,
      idleTimeoutMs: edge.idleTimeoutMs,
      resolve: edge.resolve,
      decider,
      guard,
      dns,
      log,
      report: (e: FlowStart | FlowEnd) => publisher.publish(e),
      track,
    };
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      flows++;
      socket.once('close', () => flows--);
      handleFlow(socket, ctx).catch((err: unknown) => {
        // A bug, not a client's fault: log it and drop the connection, never the process.
        log.error({ err, listener: listener.name }, 'flow handler failed');
        socket.destroy();
      });
    });
    server.on('error', (err) => log.error({ err, listener: listener.name }, 'listener error'));
    const { host, port } = splitHostPort(listener.listen);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    listeners[listener.name] = { host, port: typeof addr === 'object' && addr ? addr.port : port };
    servers.push(server);
    log.info({ listener: listener.name, mode: listener.mode, listen: `${host}:${listeners[listener.name]?.port}`, upstreamPort: listener.upstreamPort }, 'edge listening');
  }

  return {
    listeners,
    decider,
    publisher,
    activeFlows: () => flows,
    stop: async () => {
      // Stop accepting first; server.close() only calls back once every connection is gone.
      const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const s of sockets) s.destroy();
      await closed;
      await new Promise((r) => setImmediate(r));
      const left = await publisher.drain(3_000);
      if (left) log.error({ left }, 'flow events still queued at shutdown');
      decider.close();
      await transport.close();
    },
  };
}
