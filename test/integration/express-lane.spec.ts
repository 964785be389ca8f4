// The express lane (libs/edge express.ts, native/relay hello.c): the relay repeats a decision the
// edge made, for the same client, listener and server name, while the L1 verdict and the name's
// DNS answer hold. What a user checks: the relay reads exactly the name libs/sniff reads (or
// leaves the hello to it), a repeated flow is relayed and audited like the first, and nothing the
// edge must re-decide goes express: a new policy version, an expired verdict, a connection limit,
// an upstream that went away.
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readClientHello } from '@portcullis/sniff';
import { makeCerts, startTlsUpstream, waitFor } from '@portcullis/testing';
import type { TestCerts, TlsUpstream } from '@portcullis/testing';
import type { FlowEvent } from '@portcullis/flow-events';
import { capturedHellos } from '../../libs/sniff/src/fixtures/hellos';
import { mutate, mutationArb } from '../../libs/sniff/src/testing/arbitraries';
import { builtHellos } from '../../libs/sniff/src/testing/built-hellos';
import { modelHelloArb } from '../../libs/sniff/src/testing/properties';
import { admin, adminClient } from '../support/grpc';
import { framedRandomHelloArb, helloSniAgrees } from '../support/hello-sni';
import { startStack } from '../support/stack';
import type { Stack } from '../support/stack';
import { nodeTls } from '../support/tls-client';

describe('express lane: the relay reads hellos as libs/sniff does', () => {
  const seeds = [...Object.values(capturedHellos).map((h) => Buffer.from(h, 'hex')), ...builtHellos.map((b) => b.wire)];

  it("every real client's one-record hello naming a server is read, to the same name", () => {
    let named = 0;
    for (const hex of Object.values(capturedHellos)) {
      const wire = Buffer.from(hex, 'hex');
      const r = readClientHello(wire);
      const oneRecord = wire.length === 5 + wire.readUInt16BE(3);
      if (r.kind !== 'hello' || r.hello.sni.kind !== 'name' || !oneRecord) continue;
      named++;
      expect(helloSniAgrees(wire)).toBe(true);
    }
    expect(named).toBeGreaterThan(2);
  });

  it('generated hellos: never a name libs/sniff would not give, and the plain ones are read', () => {
    let read = 0;
    let runs = 0;
    fc.assert(
      fc.property(modelHelloArb, (m) => {
        runs++;
        if (helloSniAgrees(m.wire)) read++;
      }),
      { numRuns: 3000 },
    );
    // a reader that refused everything would pass the first half: the plain cases must be read
    expect(read / runs).toBeGreaterThan(0.05);
  });

  it('mutated hellos (length lies, truncations, flips, re-framings) and random bytes: never a wrong name', () => {
    fc.assert(
      fc.property(fc.constantFrom(...seeds), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (seed, mutations) => {
        helloSniAgrees(mutations.reduce<Buffer>((w, m) => mutate(w, m), seed));
      }),
      { numRuns: 10000 },
    );
    fc.assert(
      fc.property(framedRandomHelloArb, (wire) => {
        helloSniAgrees(wire);
      }),
      { numRuns: 5000 },
    );
  });
});

const profile = (extra = '') => `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: express
defaultAction: deny
noSni: deny
ech: deny
rules:
${extra}  - id: ex
    action: allow
    fqdns: [".ex.test"]
    allowPrivate: ["127.0.0.0/8"]
`;

describe('express lane: repeated flows', () => {
  let certs: TestCerts;
  let upstream: TlsUpstream;
  const stacks: Stack[] = [];
  const names = ['a.ex.test', 'b.ex.test', 'c.ex.test', 'd.ex.test', 'e.ex.test'];

  beforeAll(async () => {
    certs = makeCerts(names);
    upstream = await startTlsUpstream(certs);
  });
  afterEach(async () => {
    for (const s of stacks.splice(0)) await s.stop();
  });
  afterAll(async () => upstream?.close());

  const make = async (edge: Record<string, unknown> = {}, policy: Record<string, unknown> = {}, port = upstream.port): Promise<Stack> => {
    const s = await startStack(profile(), { listeners: [{ name: 'tls', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: port }], resolve: Object.fromEntries(names.map((n) => [n, ['127.0.0.1']])), ...edge }, policy);
    stacks.push(s);
    return s;
  };
  /**
   * The express flows counted so far: a flow is counted when its report reaches JavaScript (≤ 20 ms
   * on an idle edge), so the count is read once a report still on its way would have arrived: an
   * extra flow that took the lane fails a "still n" check instead of being counted too late.
   */
  const expectExpress = async (s: Stack, n: number): Promise<void> => {
    await waitFor(() => s.edge.expressFlows() >= n, 2_000).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 60));
    expect(s.edge.expressFlows()).toBe(n);
  };
  const ended = async (s: Stack, sni: string, n: number): Promise<FlowEvent[]> => {
    await waitFor(async () => (await s.events()).filter((e) => e.sni === sni && e.event === 'flow.end').length >= n);
    return (await s.events()).filter((e) => e.sni === sni);
  };

  it('the second and later flows of a client to a name take the express lane, relayed and audited like the first', async () => {
    const s = await make();
    for (let i = 0; i < 3; i++) expect((await nodeTls(s.port(), 'a.ex.test', certs.ca)).body).toBe('hello from upstream a.ex.test\n');
    await expectExpress(s, 2);
    const events = await ended(s, 'a.ex.test', 3);
    const starts = events.filter((e) => e.event === 'flow.start');
    const ends = events.filter((e) => e.event === 'flow.end');
    expect(starts).toHaveLength(3);
    const same = (e: FlowEvent) => ({ verdict: e.verdict, ruleId: e.ruleId, reason: e.reason, dst: e.dst, sni: e.sni, protocol: e.protocol, policyVersion: e.policyVersion, listener: e.listener, mode: e.mode });
    expect(same(starts[1] as FlowEvent)).toEqual(same(starts[0] as FlowEvent));
    expect(same(starts[2] as FlowEvent)).toEqual(same(starts[0] as FlowEvent));
    expect(new Set(starts.map((e) => e.flowId)).size).toBe(3);
    for (const e of ends) expect(e).toMatchObject({ verdict: 'allow', ruleId: 'ex', dst: `127.0.0.1:${upstream.port}` });
    // bytes counted both ways (a whole handshake and the reply; session tickets vary in size)
    for (const e of ends) if (e.event === 'flow.end') expect(Math.min(e.bytesUp, e.bytesDown)).toBeGreaterThan(200);
    // another name is decided by the edge first
    expect((await nodeTls(s.port(), 'b.ex.test', certs.ca)).body).toBe('hello from upstream b.ex.test\n');
    await expectExpress(s, 2);
  });

  it('a new policy version ends the lane: the next hello is decided again, by the new policy', async () => {
    const s = await make();
    for (let i = 0; i < 2; i++) expect((await nodeTls(s.port(), 'c.ex.test', certs.ca)).body).toBe('hello from upstream c.ex.test\n');
    await expectExpress(s, 1);
    const version = s.edge.decider.policyVersion;
    await admin(adminClient(`127.0.0.1:${s.policy.port}`), 'stack-token').apply({ content: profile('  - id: no-c\n    action: deny\n    fqdns: ["c.ex.test"]\n'), comment: 'deny c' });
    await waitFor(() => s.edge.decider.policyVersion > version);
    const r = await nodeTls(s.port(), 'c.ex.test', certs.ca);
    expect(r.errorCode).toBe('ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    await expectExpress(s, 1);
    const last = (await ended(s, 'c.ex.test', 3)).filter((e) => e.event === 'flow.start').at(-1);
    expect(last).toMatchObject({ verdict: 'deny', ruleId: 'no-c', policyVersion: s.edge.decider.policyVersion });
  });

  it("a route lasts no longer than the verdict's TTL", async () => {
    const s = await make({}, { verdictTtlMs: 400 });
    for (let i = 0; i < 2; i++) expect((await nodeTls(s.port(), 'd.ex.test', certs.ca)).body).toBe('hello from upstream d.ex.test\n');
    await expectExpress(s, 1);
    await new Promise((r) => setTimeout(r, 500));
    expect((await nodeTls(s.port(), 'd.ex.test', certs.ca)).body).toBe('hello from upstream d.ex.test\n');
    await expectExpress(s, 1); // decided by the service again
    expect((await nodeTls(s.port(), 'd.ex.test', certs.ca)).body).toBe('hello from upstream d.ex.test\n');
    await expectExpress(s, 2);
  });

  it('the upstream gone: the express connect fails, the client gets internal_error, the flow is audited connect-refused', async () => {
    const own = await startTlsUpstream(certs);
    const s = await make({}, {}, own.port);
    for (let i = 0; i < 2; i++) expect((await nodeTls(s.port(), 'e.ex.test', certs.ca)).body).toBe('hello from upstream e.ex.test\n');
    await own.close();
    const r = await nodeTls(s.port(), 'e.ex.test', certs.ca);
    expect(r.errorCode).toBe('ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR');
    await expectExpress(s, 2);
    const end = (await ended(s, 'e.ex.test', 3)).filter((e) => e.event === 'flow.end').at(-1);
    expect(end).toMatchObject({ verdict: 'allow', ruleId: 'ex', closeReason: 'connect-refused' });
  });

  it('over the per-source connection limit, a hello the relay could repeat is still refused and audited', async () => {
    const s = await make({ maxConnectionsPerSource: 2, sniffTimeoutMs: 3_000 });
    for (let i = 0; i < 2; i++) expect((await nodeTls(s.port(), 'a.ex.test', certs.ca)).body).toBe('hello from upstream a.ex.test\n');
    await expectExpress(s, 1);
    const silent = await Promise.all(
      [0, 1].map(
        () =>
          new Promise<Socket>((r) => {
            const c = connect({ port: s.port(), host: '127.0.0.1' }, () => r(c));
            c.on('error', () => undefined);
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 50));
    const r = await nodeTls(s.port(), 'a.ex.test', certs.ca);
    expect(r.body).toBe('');
    await expectExpress(s, 1);
    await waitFor(async () => (await s.events()).some((e) => e.event === 'flow.end' && e.reason === 'source-limit'));
    for (const c of silent) c.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect((await nodeTls(s.port(), 'a.ex.test', certs.ca)).body).toBe('hello from upstream a.ex.test\n');
    await expectExpress(s, 2);
  });
});
