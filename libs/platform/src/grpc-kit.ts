// gRPC server/client helpers: bind (port 0 in tests), health, auth metadata, graceful shutdown.
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { ServingStatus } from 'grpc-health-check';
import { readFileSync } from 'node:fs';
import { splitHostPort } from './config';
import type { TlsFiles } from './config';
import type { Logger } from './logger';

export interface GrpcServerHandle {
  server: grpc.Server;
  port: number;
  address: string;
  health: HealthImplementation;
  setServing(status: ServingStatus): void;
  shutdown(graceMs?: number): Promise<void>;
}

export const SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 10_000,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
};

export const CLIENT_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2_000,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
};

/** Server credentials: insecure, or TLS that demands a client certificate from the CA. */
export function serverCredentials(tls?: TlsFiles): grpc.ServerCredentials {
  if (!tls?.cert || !tls.key) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(readFileSync(tls.ca), [{ cert_chain: readFileSync(tls.cert), private_key: readFileSync(tls.key) }], true);
}

/** Channel credentials and options for a client: insecure, or TLS presenting our certificate. */
export function clientChannel(tls?: TlsFiles): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  if (!tls) return { credentials: grpc.credentials.createInsecure(), options: CLIENT_OPTIONS };
  const credentials = grpc.credentials.createSsl(readFileSync(tls.ca), tls.key ? readFileSync(tls.key) : null, tls.cert ? readFileSync(tls.cert) : null);
  return { credentials, options: tls.serverName ? { ...CLIENT_OPTIONS, 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName } : CLIENT_OPTIONS };
}

/**
 * Starts a server for the given services plus grpc.health.v1 (NOT_SERVING until setServing('SERVING')).
 * `serviceNames` are the fully-qualified names the health service reports on.
 */
export async function startGrpcServer(
  listen: string,
  register: (server: grpc.Server) => void,
  serviceNames: string[],
  tls?: TlsFiles,
): Promise<GrpcServerHandle> {
  const server = new grpc.Server(SERVER_OPTIONS);
  register(server);
  const health = new HealthImplementation({ '': 'NOT_SERVING', ...Object.fromEntries(serviceNames.map((s) => [s, 'NOT_SERVING'])) });
  health.addToServer(server);
  const { host, port: wanted } = splitHostPort(listen);
  const bindHost = host.includes(':') ? `[${host}]` : host;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${bindHost}:${wanted}`, serverCredentials(tls), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const setServing = (status: ServingStatus): void => {
    health.setStatus('', status);
    for (const s of serviceNames) health.setStatus(s, status);
  };
  return {
    server,
    port,
    address: `${bindHost}:${port}`,
    health,
    setServing,
    shutdown: (graceMs = 2_000) =>
      new Promise<void>((resolve) => {
        setServing('NOT_SERVING');
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

export function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

export function deadline(ms: number): grpc.CallOptions {
  return { deadline: Date.now() + ms };
}

/** Error with a gRPC status, for handlers to pass to callbacks. */
export function grpcError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() }) as grpc.ServiceError;
}

/** grpc-js' own diagnostics go to pino instead of stderr. */
export function routeGrpcLogs(log: Logger): void {
  grpc.setLogger({
    error: (...args: unknown[]) => log.warn({ source: 'grpc-js' }, args.map(String).join(' ')),
    info: (...args: unknown[]) => log.debug({ source: 'grpc-js' }, args.map(String).join(' ')),
    debug: (...args: unknown[]) => log.debug({ source: 'grpc-js' }, args.map(String).join(' ')),
  } as Partial<Console> as Console);
  grpc.setLogVerbosity(grpc.logVerbosity.ERROR);
}
