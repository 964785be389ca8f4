// Feeds bytes to a reader in chosen chunks and checks the reader's own contract along the way.
import type { HelloResult } from '../client-hello';
import { ClientHelloReader } from '../client-hello';
import { frameRecords, unframeRecords } from './build-hello';

export interface Delivery {
  result: HelloResult;
  /** bytes pushed when the outcome became final (undefined while need-more) */
  decidedAt: number | undefined;
  /** the reader's bytesSeen: once final, the exact byte count that decided the outcome */
  bytesSeen: number;
}

/** Contract violations are thrown as plain Errors so both vitest and fast-check report them. */
function check(cond: boolean, message: string): void {
  if (!cond) throw new Error(message);
}

/** Pushes wire[0..cuts[0]), wire[cuts[0]..cuts[1]) ... wire[last..end). Cuts are offsets, any order, may repeat. */
export function deliver(wire: Uint8Array, cuts: readonly number[]): Delivery {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < wire.length))].sort((a, b) => a - b);
  points.push(wire.length);
  const reader = new ClientHelloReader();
  let from = 0;
  let final: HelloResult | undefined;
  let decidedAt: number | undefined;
  for (const to of points) {
    const r = reader.push(wire.subarray(from, to));
    if (final) check(r === final, `a final outcome changed after more bytes (${final.kind} → ${r.kind})`);
    else if (r.kind !== 'need-more') {
      final = r;
      decidedAt = to;
    }
    from = to;
  }
  if (wire.length === 0) reader.push(wire);
  return { result: final ?? reader.result, decidedAt, bytesSeen: reader.bytesSeen };
}

export const deliverWhole = (wire: Uint8Array): Delivery => deliver(wire, []);

/** One byte per push; decidedAt is then the exact byte at which the outcome was known. */
export function deliverBytewise(wire: Uint8Array): Delivery {
  const reader = new ClientHelloReader();
  let final: HelloResult | undefined;
  let decidedAt: number | undefined;
  for (let i = 0; i < wire.length; i++) {
    const r = reader.push(wire.subarray(i, i + 1));
    if (final) check(r === final, `a final outcome changed after byte ${i}`);
    else if (r.kind !== 'need-more') {
      final = r;
      decidedAt = i + 1;
    }
  }
  return { result: final ?? reader.result, decidedAt, bytesSeen: reader.bytesSeen };
}

/** The same hello cut into records of the given payload sizes (the last size repeats). */
export function reframe(wire: Uint8Array, recordSizes: number[]): Buffer {
  const { handshake, recordVersion } = unframeRecords(wire);
  return frameRecords(handshake, { recordSizes, recordVersion });
}

/** Outcome without fields that legitimately depend on framing (helloBytes, records). */
export function comparable(r: HelloResult): unknown {
  return r.kind === 'hello' ? { kind: 'hello', hello: r.hello } : r;
}
