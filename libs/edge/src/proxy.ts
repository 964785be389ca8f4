// startEdgeProxy(config): the listeners, the decision client and the flow-event publisher.
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import cluster from 'node:cluster';
import { join } from 'node:path';
import { FlowPublisher, RedisFlowTransport, Spool } from '@portcullis/flow-events';
import type { FlowTransport } from '@portcullis/flow-events';
import { connectRedis, lineWriter, meter, openFileCount, openFilesLimit, redisConfigured, splitHostPort } from '@portcullis/platform';
import type { Logger, PortcullisConfig } from '@portcullis/platform';
import { DnsCache } from './connect';
import { DecisionClient } from './decide';
import { SsrfGuard } from './ssrf';
import { handleFlow, handleNativeFlow, onFlowClosed } from './flow';
import { nativeRelay, nativeRelayError, REPORTS_WITHIN_MS } from './native-relay';
import { inheritedListenerFd, LISTEN_BACKLOG, nativeIntakeFits } from './shared-listeners';
import type { ListeningMessage } from './shared-listeners';
import { EdgeMetrics } from './observe';
import { expressEnabled, ExpressRoutes } from './express';

export interface EdgeHandle {
  /** listener name → bound address, and who accepts and sniffs (native: the relay thread) */
  listeners: Record<string, { host: string; port: number; intake: 'native' | 'node' }>;
  decider: DecisionClient;
  publisher: FlowPublisher;
  activeFlows(): number;
  /** the data plane in use: native (the relay thread) or node (the JavaScript relay) */
  relay: 'native' | 'node';
  /** flows that took the express lane so far (the relay repeated an L1 decision: express.ts) */
  expressFlows(): number;
  ready(): boolean;
  stop(): Promise<void>;
}

export interface EdgeDeps {
  log: Logger;
  /** Embedded mode passes the in-memory stream; otherwise Redis from config.redis.url. */
  transport?: FlowTransport;
  /** Overrides edge.policyService (the embedded stack binds the policy service on port 0). */
  policyAddress?: string;
}

/** Descriptors kept for what is not a flow's socket: Redis, gRPC channels, DNS, spool, scrapes. */
const FD_HEADROOM = 32;

/**
 * What the open-files limit (RLIMIT_NOFILE) allows: every flow holds two descriptors (client and
 * upstream). `sockets` is how many client and upstream sockets the flows may hold together;
 * maxConnections is edge.maxConnections, clamped (with a warning naming the numbers) so that
 * admitted flows leave a tenth of that for connections being refused.
 */
function descriptorBudget(configured: number, log: Logger): { limit: number | undefined; sockets: number; maxConnections: number } {
  const limit = openFilesLimit();
  const open = openFileCount();
  if (limit === undefined || open === undefined || limit >= Number.MAX_SAFE_INTEGER) return { limit, sockets: Number.MAX_SAFE_INTEGER, maxConnections: configured };
  const sockets = Math.max(2, limit - open - FD_HEADROOM);
  const allowed = Math.max(1, Math.floor((sockets * 0.9) / 2));
  if (configured <= allowed) return { limit, sockets, maxConnections: configured };
  log.warn(
    { maxConnections: configured, openFilesLimit: limit, openFiles: open, needed: 2 * configured + open + FD_HEADROOM, clampedTo: allowed },
    'edge.maxConnections needs more file descriptors than the open-files limit allows: clamped (raise the limit: ulimit -n, systemd LimitNOFILE, docker --ulimit nofile; or lower edge.maxConnections)',
  );
  return { limit, sockets, maxConnections: allowed };
}

export async function startEdgeProxy(config: Readonly<PortcullisConfig>, deps: EdgeDeps): Promise<EdgeHandle> {
  const log = deps.log;
  const edge = config.edge;
  let transport = deps.transport;
  if (!transport) {
    if (!redisConfigured(config)) throw new Error('edge-proxy needs redis.url (or redis.sentinels / redis.cluster; or run `portcullis run all` for the embedded stack)');
    const redis = connectRedis(config.redis, { maxRetriesPerRequest: 1 });
    redis.on('error', (err) => log.warn({ err: err.message }, 'redis error'));
    transport = new RedisFlowTransport(redis, { maxLen: config.stream.maxLen });
    const close = transport.close.bind(transport);
    transport.close = async () => {
      await close();
      redis.disconnect();
    };
  }
  let droppedLogged = 0;
  // One spool per process: cluster workers must not share a file.
  const spool = edge.spoolDir && edge.spoolMaxBytes > 0 ? new Spool(join(edge.spoolDir, edge.nodeId, cluster.isWorker ? `worker-${cluster.worker?.id}` : 'main'), edge.spoolMaxBytes) : undefined;
  const publisher = new FlowPublisher(transport, {
    maxQueue: edge.eventQueueSize,
    ...(spool ? { spool } : {}),
    onError: (err, queued) => log.warn({ err: (err as Error).message, queued }, 'flow events not yet written; retrying'),
    onDrop: () => {
      const now = Date.now();
      if (now - droppedLogged > 10_000) {
        droppedLogged = now;
        log.error({ dropped: publisher.stats.dropped }, 'flow event queue full: events dropped');
      }
    },
  });
  const decider = new DecisionClient({ address: deps.policyAddress ?? edge.policyService, nodeId: edge.nodeId, decideTimeoutMs: edge.decideTimeoutMs, l1Size: edge.l1CacheSize, failMode: edge.failMode, serveStaleMs: edge.serveStaleMs, log, tls: config.grpcTls });
  decider.start();

  let flows = 0;
  const metrics = new EdgeMetrics({ activeFlows: () => flows, queueDepth: () => publisher.stats.queued, spoolBytes: () => publisher.spoolBytes, dropped: () => publisher.stats.dropped, policyVersion: () => decider.policyVersion, nodeId: edge.nodeId });
  const guard = new SsrfGuard({ allowPrivate: edge.allowPrivate });
  const dns = new DnsCache({ maxEntries: Math.max(1, edge.dnsCacheSize), maxTtlMs: edge.dnsMaxTtlMs, negativeTtlMs: 5_000 });
  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s)); // on(): close fires once, and once() costs a wrapper per socket
  };
  let shuttingDown = false;
  let stopping = false;
  const native = edge.relay === 'native' ? nativeRelay() : undefined;
  if (edge.relay === 'native' && !native) log.warn({ err: nativeRelayError() }, 'edge.relay is native but the relay addon is missing: relaying in JavaScript');
  if (native) native.onReportError = (err) => log.error({ err }, 'native relay: a flow report failed');
  const express = native && expressEnabled() ? new ExpressRoutes(native) : undefined;
  if (express) decider.onInvalidate = () => express.clear();
  const fds = descriptorBudget(edge.maxConnections, log);
  const maxConnections = fds.maxConnections;
  express?.limits(maxConnections, edge.maxConnectionsPerSource);
  const acceptErrors = meter().createCounter('portcullis_accept_errors_total', { description: 'Connections a listener could not take: accept() errors by code, and fd-limit (closed at once, the descriptors all but spent)' });
  const perSource = new Map<string, number>();
  /** client sockets open (admitted or being refused): with `flows` upstream sockets, the descriptors flows hold */
  let clients = 0;
  /**
   * Admission: the descriptor budget, then a global and a per-source-address cap on concurrent
   * connections. Over the budget a connection is closed at once: a refusal that lingers would
   * hold a descriptor, and at the limit accept() fails and libuv closes waiting connections
   * without the edge ever seeing them.
   */
  const admitFrom = (src: string): string | undefined => {
    clients++;
    const n = perSource.get(src) ?? 0;
    const refusal = clients + flows > fds.sockets ? 'fd-limit' : flows >= maxConnections ? 'connection-limit' : n >= edge.maxConnectionsPerSource ? 'source-limit' : undefined;
    if (refusal) return refusal;
    perSource.set(src, n + 1);
    flows++;
    return undefined;
  };
  const releaseRefused = (): void => {
    clients--;
  };
  const releaseAdmitted = (src: string): void => {
    clients--;
    flows--;
    const left = (perSource.get(src) ?? 1) - 1;
    if (left > 0) perSource.set(src, left);
    else perSource.delete(src);
  };
  const admit = (socket: Socket): string | undefined => {
    const src = socket.remoteAddress ?? '';
    const refusal = admitFrom(src);
    if (refusal) socket.once('close', releaseRefused);
    else onFlowClosed(socket, () => releaseAdmitted(src));
    return refusal;
  };
  // Native intake: on SNI listeners (no PROXY header to read), the relay owns the listening
  // socket, accepts and reads the ClientHello. A cluster worker's relay accepts on the socket the
  // primary opened for that listener (shared-listeners.ts); without one (the primary found no
  // relay addon) the worker listens through node:cluster.
  const nativeIntake = (l: (typeof edge.listeners)[number]): boolean => native !== undefined && nativeIntakeFits(edge, l) && (!cluster.isWorker || inheritedListenerFd(l.name) !== undefined);
  const nativeListeners: { close(): void }[] = [];
  // The flow lines carry names, addresses, counts and reasons, never a secret: redaction (the
  // logger's wildcard paths) was half of their cost, about 5 µs per line.
  const flowLog = log.child({}, { redact: [] });
  const flowEndLine = lineWriter(flowLog, 'info', 'flow.end');
  let acceptErrorLogged = 0;
  const servers: Server[] = [];
  const listeners: EdgeHandle['listeners'] = {};
  for (const listener of edge.listeners) {
    const ctx = {
      nodeId: edge.nodeId,
      listener,
      sniffTimeoutMs: edge.sniffTimeoutMs,
      connectTimeoutMs: edge.connectTimeoutMs,
      idleTimeoutMs: edge.idleTimeoutMs,
      requireSniMatch: edge.requireSniMatch,
      resolve: edge.resolve,
      decider,
      metrics,
      guard,
      dns,
      log,
      flowLog,
      flowEndLine,
      report: (encoded: string) => publisher.publishEncoded(encoded),
      track,
      ...(native ? { nativeRelay: native } : {}),
      ...(express ? { express } : {}),
      shuttingDown: () => shuttingDown,
    };
    const acceptError = (code: string, err?: string): void => {
      acceptErrors.add(1, { listener: listener.name, code });
      // at most every 10 s instead of once per refused connection
      const now = Date.now();
      if (now - acceptErrorLogged > 10_000) {
        acceptErrorLogged = now;
        log.error({ code, ...(err ? { err } : {}), listener: listener.name, activeFlows: flows, openClients: clients, openFilesLimit: fds.limit, maxConnections }, code === 'fd-limit' ? 'listener out of file descriptors: closing new connections at once' : 'listener error');
      }
    };
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      const refusal = admit(socket);
      handleFlow(socket, ctx, refusal).catch((err: unknown) => {
        // A bug, not a client's fault: log it and drop the connection, never the process.
        log.error({ err, listener: listener.name }, 'flow handler failed');
        socket.destroy();
      });
      if (refusal === 'fd-limit') {
        // audited like any refusal (handleFlow above), but its descriptor is given back now
        acceptError('fd-limit');
        socket.destroy();
      }
    });
    server.on('error', (err: NodeJS.ErrnoException) => {
      // accept() failures do not stop the listener. (EMFILE/ENFILE rarely get here: libuv closes
      // the waiting connections itself and reports nothing, hence the budget in admit.)
      acceptError(err.code ?? 'unknown', err.message);
    });
    const { host, port } = splitHostPort(listener.listen);
    if (native && nativeIntake(listener)) {
      const bound = native.listen(host, port, LISTEN_BACKLOG, listener.sniffTimeoutMs ?? edge.sniffTimeoutMs, {
        accepted: (client) => {
          const src = client.remoteAddress;
          const refusal = admitFrom(src);
          if (refusal === 'fd-limit') acceptError('fd-limit');
          // refused now, not after the audit's awaits: the relay may have taken the flow's hello
          // down the express lane meanwhile (then it is closed, whatever it was doing)
          if (refusal) client.refuse(null, refusal !== 'fd-limit');
          handleNativeFlow(client, ctx, refusal, refusal ? releaseRefused : () => releaseAdmitted(src), (err: unknown) => {
            log.error({ err, listener: listener.name }, 'flow handler failed');
            client.kill();
          });
        },
        fdLimit: (address, peerPort) => {
          acceptError('fd-limit');
          handleNativeFlow(native.closedClient(address, peerPort, 'fd-limit'), ctx, 'fd-limit', () => undefined, (err: unknown) => log.error({ err, listener: listener.name }, 'flow handler failed'));
        },
        acceptError: (code) => acceptError(code),
      }, cluster.isWorker ? inheritedListenerFd(listener.name) : undefined);
      nativeListeners.push(bound);
      // the primary counts its workers' listeners (node:cluster's own 'listening' covers only its sockets)
      if (cluster.isWorker) process.send?.({ portcullis: 'native-listening', listener: listener.name } satisfies ListeningMessage, undefined, undefined, () => undefined);
      listeners[listener.name] = { host, port: bound.port, intake: 'native' };
      log.info({ listener: listener.name, mode: listener.mode, listen: `${host}:${bound.port}`, upstreamPort: listener.upstreamPort, relay: 'native', relayThread: native.threaded, intake: 'native', express: express !== undefined }, 'edge listening');
      continue;
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Node's default backlog (511) overflows under a burst of connections; the kernel caps
      // this at net.core.somaxconn. An overflow with SYN cookies on leaves a client that waits
      // for the server to speak first (SSH, SMTP) connected to nothing.
      server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    listeners[listener.name] = { host, port: typeof addr === 'object' && addr ? addr.port : port, intake: 'node' };
    servers.push(server);
    log.info({ listener: listener.name, mode: listener.mode, listen: `${host}:${listeners[listener.name]?.port}`, upstreamPort: listener.upstreamPort, relay: native ? 'native' : 'node', ...(native ? { relayThread: native.threaded } : {}), intake: 'node' }, 'edge listening');
  }

  return {
    listeners,
    decider,
    publisher,
    activeFlows: () => flows,
    relay: native ? 'native' : 'node',
    expressFlows: () => express?.taken ?? 0,
    // ready: listening, and hearing from the policy service (or a fail mode that does not need it);
    // an edge that would refuse everything should not get clients from the load balancer
    ready: () => !stopping && servers.every((s) => s.listening) && (decider.connected || edge.failMode === 'open'),
    stop: async () => {
      // Stop accepting; let open flows finish for up to drainTimeoutMs; then close them (reason shutdown).
      stopping = true;
      const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const l of nativeListeners) l.close();
      // a connection the relay accepted just before is reported within REPORTS_WITHIN_MS (at once
      // with its hello): it is then a flow like the others, which the drain below waits for
      if (nativeListeners.length) await new Promise((r) => setTimeout(r, REPORTS_WITHIN_MS + 5));
      if (flows > 0) log.info({ activeFlows: flows, drainTimeoutMs: edge.drainTimeoutMs }, 'edge draining');
      const until = Date.now() + edge.drainTimeoutMs;
      while (flows > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      shuttingDown = true;
      if (flows > 0) log.warn({ activeFlows: flows }, 'drain timed out: closing the remaining flows');
      for (const s of sockets) s.destroy();
      native?.killAll();
      await closed;
      // every socket's close handlers (which write the flow.end records) run before the drain
      const until2 = Date.now() + 2_000;
      while ((sockets.size > 0 || (native?.active ?? 0) > 0) && Date.now() < until2) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setImmediate(r));
      const left = await publisher.drain(3_000);
      if (left) log.error({ left }, 'flow events still queued at shutdown');
      decider.close();
      await transport.close();
    },
  };
}
