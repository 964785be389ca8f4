// Native intake for edge.workers > 1. The primary opens the listening socket of every listener the
// native relay can take (bindSharedListener) and never accepts on it; each worker inherits the
// sockets as extra descriptors of cluster.fork (stdio 4, 5, …, named in an environment variable)
// and its relay accepts on them. As with node:cluster's SCHED_NONE, every worker takes
// connections from the one kernel queue: a connection is either still queued, for any live worker
// to take, or in exactly one worker, whose death closes it. A replacement worker inherits the same
// sockets. Listeners the relay cannot take (PROXY protocol, CONNECT, SOCKS, transparent) still
// listen through node:cluster.
import type { PortcullisConfig } from '@portcullis/platform';
import { splitHostPort } from '@portcullis/platform';
import { bindSharedListener } from './native-relay';

/** The listen backlog of every edge listener. Node's default (511) overflows under a burst of connections; the kernel caps it at net.core.somaxconn. */
export const LISTEN_BACKLOG = 4096;

/** listener name → the descriptor number a worker finds the shared socket at (JSON) */
export const SHARED_LISTENERS_ENV = 'PORTCULLIS_SHARED_LISTENERS';

/** What a worker sends the primary once its relay listens on a shared socket (cluster's own 'listening' event covers only node:cluster listeners). */
export interface ListeningMessage {
  portcullis: 'native-listening';
  listener: string;
}

export function isListeningMessage(m: unknown): m is ListeningMessage {
  return typeof m === 'object' && m !== null && (m as Partial<ListeningMessage>).portcullis === 'native-listening';
}

type EdgeConfig = PortcullisConfig['edge'];

/** The native relay accepts and sniffs on this listener itself: SNI, no PROXY header to read first. */
export function nativeIntakeFits(edge: Readonly<EdgeConfig>, listener: Readonly<EdgeConfig['listeners'][number]>): boolean {
  return edge.relay === 'native' && listener.mode === 'sni' && !listener.proxyProtocol;
}

export interface SharedListeners {
  /** the primary's descriptors, in the order they go after cluster.fork's stdio 0-3 */
  fds: number[];
  /** the value of SHARED_LISTENERS_ENV for the workers */
  env: string;
}

/**
 * The primary's side: a listening socket per listener the native relay takes; undefined when there
 * is none, or the relay addon is missing (then every listener goes through node:cluster).
 */
export function openSharedListeners(edge: Readonly<EdgeConfig>): SharedListeners | undefined {
  const fds: number[] = [];
  const at: Record<string, number> = {};
  for (const l of edge.listeners) {
    if (!nativeIntakeFits(edge, l)) continue;
    const { host, port } = splitHostPort(l.listen);
    const bound = bindSharedListener(host, port, LISTEN_BACKLOG);
    if (!bound) return undefined;
    at[l.name] = 4 + fds.length;
    fds.push(bound.fd);
  }
  return fds.length ? { fds, env: JSON.stringify(at) } : undefined;
}

/** A worker's side: the inherited descriptor of this listener's shared socket, if the primary opened one. */
export function inheritedListenerFd(name: string, env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env[SHARED_LISTENERS_ENV];
  if (!raw) return undefined;
  try {
    const fd = (JSON.parse(raw) as Record<string, unknown>)[name];
    return typeof fd === 'number' && Number.isInteger(fd) && fd >= 3 ? fd : undefined;
  } catch {
    return undefined;
  }
}
