// Transparent listeners: the destination a connection had before iptables REDIRECT, read with
// getsockopt(SO_ORIGINAL_DST) through a small N-API addon (native/original-dst, built by npm ci).
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { findAddon, requireAddon } from './addon';

type Addon = { originalDst(fd: number): { address: string; port: number } | null };
let addon: Addon | undefined;

const ADDON = join('native', 'original-dst', 'build', 'Release', 'original_dst.node');

/** Loads the addon once; throws a clear error when it was not built (transparent mode unusable). */
export function loadOriginalDst(): Addon {
  if (addon) return addon;
  const path = findAddon(ADDON);
  if (!path) throw new Error(`transparent listeners need ${ADDON}: run \`npm ci\` (or \`npm run prepare\`) on a machine with g++ and Node's headers`);
  addon = requireAddon<Addon>(path);
  return addon;
}

/** The pre-REDIRECT destination of an accepted socket, or undefined when it was not redirected. */
export function originalDestination(socket: Socket): { address: string; port: number } | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  const r = loadOriginalDst().originalDst(fd);
  if (!r) return undefined;
  // IPv4-mapped forms from dual-stack sockets compare as plain IPv4
  return { address: r.address.startsWith('::ffff:') ? r.address.slice(7) : r.address, port: r.port };
}
