import * as protoLoader from '@grpc/proto-loader';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecideCodecError, decodeDecideRequest, decodeDecideResponse, decodeDecideStreamRequest, decodeDecideStreamResponse, encodeDecideStreamRequest, encodeDecideStreamResponse } from './decide-codec';
import type { DecideRequest } from './generated/portcullis/v1/DecideRequest';
import type { DecideResponse } from './generated/portcullis/v1/DecideResponse';
import type { DecideStreamRequest } from './generated/portcullis/v1/DecideStreamRequest';
import type { DecideStreamResponse } from './generated/portcullis/v1/DecideStreamResponse';
import { findProtoDir, LOADER_OPTIONS, loadContracts, PROTO_FILES } from './load';

type Method = { requestSerialize(m: unknown): Buffer; requestDeserialize(b: Buffer): unknown; responseSerialize(m: unknown): Buffer; responseDeserialize(b: Buffer): unknown };
/** protobufjs through proto-loader, as loaded without the hand codec: the reference */
const reference = protoLoader.loadSync(PROTO_FILES, { ...LOADER_OPTIONS, includeDirs: [findProtoDir()] })['portcullis.v1.PolicyDecision'] as unknown as Record<'Decide' | 'DecideStream', Method>;
const ref = reference.DecideStream;
const installed = loadContracts().portcullis.v1.PolicyDecision.service.DecideStream as unknown as Method;

const text = fc.oneof(fc.constantFrom('', 'github.com', 'xn--80ak6aa92e.com', '10.0.0.1'), fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 300 }));
const u32 = fc.oneof(fc.constantFrom(0, 1, 443, 127, 128, 16_383, 16_384, 4_294_967_295), fc.nat({ max: 4_294_967_295 }));
const u53 = fc.oneof(fc.constantFrom(0, 1, 127, 128, 2 ** 32, Number.MAX_SAFE_INTEGER), fc.maxSafeNat());
const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });

const decideRequest: fc.Arbitrary<DecideRequest> = fc.record(
  { sni: text, connect_host: text, port: u32, source_ip: text, protocol: text, ech: fc.boolean(), ech_grease: fc.boolean(), node_id: text, listener: text, flow_id: text, no_name_reason: text, traceparent: text },
  { requiredKeys: [] },
);
const decideResponse: fc.Arbitrary<DecideResponse> = fc.record(
  {
    verdict: fc.constantFrom('VERDICT_UNSPECIFIED', 'VERDICT_ALLOW', 'VERDICT_DENY', 0, 1, 2) as fc.Arbitrary<DecideResponse['verdict']>,
    rule_id: text,
    reason: text,
    detail: text,
    policy_version: u53,
    cache_ttl_ms: u32,
    would_deny: fc.boolean(),
    would_deny_rule_id: text,
    allow_private: fc.array(text, { maxLength: 4 }),
    cache_hit: fc.boolean(),
  },
  { requiredKeys: [] },
);
const streamRequest: fc.Arbitrary<DecideStreamRequest> = fc.record({
  request_id: opt(u53),
  request: opt(decideRequest),
  batch: opt(fc.array(fc.record({ request_id: u53, request: opt(decideRequest) }), { maxLength: 5 })),
});
const streamResponse: fc.Arbitrary<DecideStreamResponse> = fc.record({
  request_id: opt(u53),
  response: opt(decideResponse),
  error: opt(text),
  batch: opt(fc.array(fc.record({ request_id: u53, response: opt(decideResponse), error: opt(text) }), { maxLength: 5 })),
});

function must(b: Buffer | undefined): Buffer {
  if (!b) throw new Error('the hand encoder declined a plain message');
  return b;
}

describe('decide codec (hand-written) against protobufjs', () => {
  it('DecideStreamRequest: both encoders give bytes both decoders read the same', () => {
    fc.assert(
      fc.property(streamRequest, (m) => {
        const want = ref.requestDeserialize(ref.requestSerialize(m));
        const ours = must(encodeDecideStreamRequest(m));
        expect(ref.requestDeserialize(ours)).toEqual(want);
        expect(decodeDecideStreamRequest(ours)).toEqual(want);
        expect(decodeDecideStreamRequest(ref.requestSerialize(m))).toEqual(want);
      }),
      { numRuns: 500 },
    );
  });

  it('DecideStreamResponse: both encoders give bytes both decoders read the same', () => {
    fc.assert(
      fc.property(streamResponse, (m) => {
        const want = ref.responseDeserialize(ref.responseSerialize(m));
        const ours = must(encodeDecideStreamResponse(m));
        expect(ref.responseDeserialize(ours)).toEqual(want);
        expect(decodeDecideStreamResponse(ours)).toEqual(want);
        expect(decodeDecideStreamResponse(ref.responseSerialize(m))).toEqual(want);
      }),
      { numRuns: 500 },
    );
  });

  it('the unary messages decode as protobufjs decodes them', () => {
    fc.assert(
      fc.property(decideRequest, decideResponse, (q, r) => {
        expect(decodeDecideRequest(reference.Decide.requestSerialize(q))).toEqual(reference.Decide.requestDeserialize(reference.Decide.requestSerialize(q)));
        expect(decodeDecideResponse(reference.Decide.responseSerialize(r))).toEqual(reference.Decide.responseDeserialize(reference.Decide.responseSerialize(r)));
      }),
      { numRuns: 200 },
    );
  });

  it('a frozen response is encoded once and reused, with the same bytes as a fresh one', () => {
    const r: DecideResponse = { verdict: 'VERDICT_ALLOW', rule_id: 'github', reason: 'rule', detail: 'matched rule github', policy_version: 7, cache_ttl_ms: 60_000, allow_private: Object.freeze(['127.0.0.0/8']) as string[] };
    Object.freeze(r);
    const a = must(encodeDecideStreamResponse({ request_id: 1, response: r }));
    const b = must(encodeDecideStreamResponse({ request_id: 1, response: r }));
    expect(b).toEqual(a);
    expect(a).toEqual(must(encodeDecideStreamResponse({ request_id: 1, response: { ...r, allow_private: ['127.0.0.0/8'] } })));
    expect(decodeDecideStreamResponse(must(encodeDecideStreamResponse({ batch: [{ request_id: 2, response: r }, { request_id: 3, response: r }] }))).batch.map((e) => e.response?.rule_id)).toEqual(['github', 'github']);
  });

  it('a message larger than the scratch buffer (a long batch, long names) encodes whole, and the next small one too', () => {
    const big: DecideStreamRequest = { batch: Array.from({ length: 6_000 }, (_, i) => ({ request_id: i + 1, request: { sni: `${'a'.repeat(200)}${i}.example.org` } })) };
    const bytes = must(encodeDecideStreamRequest(big));
    expect(bytes.length).toBeGreaterThan(1024 * 1024);
    expect(decodeDecideStreamRequest(bytes)).toEqual(ref.requestDeserialize(ref.requestSerialize(big)));
    const small = { request_id: 5, request: { sni: 'x.y' } };
    expect(decodeDecideStreamRequest(must(encodeDecideStreamRequest(small)))).toEqual(ref.requestDeserialize(ref.requestSerialize(small)));
  });

  it('identical answers decode to one frozen, shared response object; different ones do not', () => {
    const r: DecideResponse = { verdict: 'VERDICT_DENY', reason: 'default', detail: 'default action', policy_version: 3, cache_ttl_ms: 1_000 };
    const a = decodeDecideStreamResponse(must(encodeDecideStreamResponse({ batch: [{ request_id: 1, response: r }, { request_id: 2, response: r }] })));
    const b = decodeDecideStreamResponse(must(encodeDecideStreamResponse({ request_id: 3, response: r })));
    expect(a.batch[0]?.response).toBe(a.batch[1]?.response);
    expect(b.response).toBe(a.batch[0]?.response);
    expect(Object.isFrozen(b.response) && Object.isFrozen(b.response?.allow_private)).toBe(true);
    const c = decodeDecideStreamResponse(must(encodeDecideStreamResponse({ request_id: 4, response: { ...r, cache_hit: true } })));
    expect(c.response).not.toBe(b.response);
    expect(c.response?.cache_hit).toBe(true);
  });

  it('values outside the fast path (Long-like strings, enum numbers out of range) go through protobufjs', () => {
    expect(encodeDecideStreamRequest({ request_id: '12345' })).toBeUndefined();
    expect(encodeDecideStreamRequest({ request: { port: -1 } })).toBeUndefined();
    expect(encodeDecideStreamRequest({ batch: [{ request_id: 1, batch: [{ request_id: 2 }] }] })).toBeUndefined();
    expect(encodeDecideStreamResponse({ response: { verdict: 'VERDICT_MAYBE' as never } })).toBeUndefined();
    // the installed serializer falls back, and the result reads back
    const bytes = installed.requestSerialize({ request_id: '12345', request: { sni: 'a.b', port: '443' as never } });
    expect(decodeDecideStreamRequest(bytes)).toEqual(ref.requestDeserialize(ref.requestSerialize({ request_id: 12345, request: { sni: 'a.b', port: 443 } })));
  });

  it('unknown fields are skipped (a newer peer may add some)', () => {
    const known = must(encodeDecideStreamRequest({ request_id: 9, request: { sni: 'x.y', port: 443 } }));
    // field 15 varint, field 16 length-delimited, field 17 fixed64, field 18 fixed32
    const extra = Buffer.from([15 << 3, 0x96, 0x01, 0x82, 0x01, 0x02, 0x61, 0x62, 0x89, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x95, 0x01, 1, 2, 3, 4]);
    expect(decodeDecideStreamRequest(Buffer.concat([known, extra]))).toEqual(decodeDecideStreamRequest(known));
  });
});

describe('decide codec refuses malformed bytes with DecideCodecError', () => {
  const good = must(encodeDecideStreamRequest({ request_id: 300, request: { sni: 'github.com', port: 443, source_ip: '10.0.0.1', node_id: 'n1' }, batch: [{ request_id: 301, request: { sni: 'a.github.com' } }] }));
  const refused = (bytes: number[] | Buffer, what: RegExp): void => {
    let err: unknown;
    try {
      decodeDecideStreamRequest(Buffer.from(bytes));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DecideCodecError);
    expect((err as DecideCodecError).code).toBe('PORTCULLIS_ERR_DECIDE_MESSAGE');
    expect((err as Error).message).toMatch(what);
  };

  it.each([
    ['a truncated varint', [0x08, 0x80], /truncated varint/],
    ['a varint of 11 bytes', [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], /longer than 10/],
    ['a length past the end', [0x12, 0x05, 0x0a, 0x01], /runs past the end/],
    ['a known field with another wire type', [0x10, 0x01], /field 2 has wire type 0/],
    ['field number 0', [0x00, 0x01], /invalid tag/],
    ['a group (wire type 3)', [0x7b, 0x7c], /unsupported wire type 3/],
    ['a batch entry with its own batch', [0x1a, 0x04, 0x1a, 0x02, 0x08, 0x01], /batch of its own/],
    ['a truncated sub-message field', [0x12, 0x03, 0x0a, 0x05, 0x61], /runs past the end/],
  ])('%s', (_name, bytes, what) => refused(bytes, what));

  it('every truncation of a good message is refused or reads as a prefix, never anything else', () => {
    for (let n = 0; n < good.length; n++) {
      try {
        decodeDecideStreamRequest(good.subarray(0, n));
      } catch (e) {
        expect(e).toBeInstanceOf(DecideCodecError);
      }
    }
  });

  it('random bytes either decode or are refused with DecideCodecError (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        for (const decode of [decodeDecideStreamRequest, decodeDecideStreamResponse, decodeDecideRequest, decodeDecideResponse]) {
          try {
            decode(Buffer.from(bytes));
          } catch (e) {
            expect(e).toBeInstanceOf(DecideCodecError);
          }
        }
      }),
      { numRuns: 3_000 },
    );
  });
});
