// Delivery checks for any incremental reader of this library (push(chunk) → result with a 'need-more' kind).

export interface Pushable<R> {
  push(chunk: Uint8Array): R;
}

type Kinded = { kind: string };

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function fail(message: string, detail: unknown): never {
  throw new Error(`${message}: ${JSON.stringify(detail)}`);
}

/** Pushes the chunks between the cut offsets; the final outcome must not change once given. */
export function deliverTo<R extends Kinded>(make: () => Pushable<R>, wire: Uint8Array, cuts: readonly number[]): { result: R; decidedAt: number | undefined } {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < wire.length))].sort((a, b) => a - b);
  points.push(wire.length);
  const reader = make();
  let from = 0;
  let final: R | undefined;
  let decidedAt: number | undefined;
  let last = reader.push(new Uint8Array(0));
  for (const to of points) {
    last = reader.push(wire.subarray(from, to));
    if (final) {
      if (!same(last, final)) fail('a final outcome changed', { final, now: last });
    } else if (last.kind !== 'need-more') {
      final = last;
      decidedAt = to;
    }
    from = to;
  }
  return { result: final ?? last, decidedAt };
}

/**
 * The contract every reader here keeps: whole, one byte per push and split in two at every offset give the
 * same outcome; the one-byte run decides at byte d, and the first d bytes alone give that outcome while any
 * shorter prefix gives need-more. Returns the outcome and d.
 */
export function checkDeliveries<R extends Kinded>(make: () => Pushable<R>, wire: Uint8Array, everySplit = true): { result: R; decidedAt: number | undefined } {
  const whole = deliverTo(make, wire, []);
  const bytewise = deliverTo(
    make,
    wire,
    Array.from({ length: wire.length }, (_, i) => i),
  );
  if (!same(whole.result, bytewise.result)) fail('one-byte reads changed the outcome', { whole: whole.result, bytewise: bytewise.result });
  if (everySplit) {
    for (let at = 1; at < wire.length; at++) {
      const r = deliverTo(make, wire, [at]).result;
      if (!same(r, whole.result)) fail('a two-read split changed the outcome', { at, whole: whole.result, split: r });
    }
  }
  const d = bytewise.decidedAt;
  if (d !== undefined) {
    const before = deliverTo(make, wire.subarray(0, d - 1), []).result;
    if (before.kind !== 'need-more') fail('decided before the deciding byte', { d, before });
    const exact = deliverTo(make, wire.subarray(0, d), []).result;
    if (!same(exact, whole.result)) fail('the deciding prefix alone gives another outcome', { d, exact });
  }
  return bytewise;
}
