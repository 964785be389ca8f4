// Locked doors: mutual TLS on the gRPC hops (edge → policy, CLI → admin), Redis over TLS with an
// ACL user, and secrets that never reach the logs.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadContracts } from '@portcullis/contracts';
import { parseConfig } from '@portcullis/platform';
import { startPolicyService } from '@portcullis/policy';
import { freePort, makeCerts, startRedis, startTlsUpstream, waitFor } from '@portcullis/testing';
import type { TestCerts, TlsUpstream } from '@portcullis/testing';
import { cli } from '../support/cli';
import { decide, healthStatus } from '../support/grpc';
import { startApp, waitForOutput, writeConfig } from '../support/processes';
import { startStack } from '../support/stack';
import { nodeTls } from '../support/tls-client';

const PROFILE = `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: doors
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: ok
    action: allow
    fqdns: ["ok.test"]
    allowPrivate: ["127.0.0.0/8"]
`;


describe('locked doors', () => {
  let certs: TestCerts;
  let upstream: TlsUpstream;
  let dir: string;

  beforeAll(async () => {
    certs = makeCerts(['localhost', 'ok.test']);
    upstream = await startTlsUpstream(certs);
    dir = mkdtempSync(join(tmpdir(), 'portcullis-doors-'));
    writeFileSync(join(dir, 'p.yaml'), PROFILE);
  });
  afterAll(async () => upstream?.close());

  it('mTLS: the policy service refuses clients without a certificate from the CA; edge and CLI with one get through', async () => {
    const mtls = { ca: certs.caPath, cert: certs.certPath, key: certs.keyPath };
    const stack = await startStack(PROFILE, { listeners: [{ name: 'tls', mode: 'sni', listen: '127.0.0.1:0', upstreamPort: upstream.port }], resolve: { 'ok.test': ['127.0.0.1'] } }, {}, { grpcTls: mtls });
    try {
      const address = `127.0.0.1:${stack.policy.port}`;
      const { PolicyDecision } = loadContracts().portcullis.v1;
      const plain = new PolicyDecision(address, grpc.credentials.createInsecure());
      const noCert = new PolicyDecision(address, grpc.credentials.createSsl(certs.ca));
      const foreignCa = makeCerts(['localhost']);
      const wrongCa = new PolicyDecision(address, grpc.credentials.createSsl(certs.ca, readFileSync(foreignCa.clientKeyPath), readFileSync(foreignCa.clientCertPath)));
      const good = new PolicyDecision(address, grpc.credentials.createSsl(certs.ca, readFileSync(certs.clientKeyPath), readFileSync(certs.clientCertPath)));
      for (const c of [plain, noCert, wrongCa]) await expect(decide(c, { sni: 'ok.test', port: 443 })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      expect(await decide(good, { sni: 'ok.test', port: 443 })).toMatchObject({ verdict: 'VERDICT_ALLOW' });
      for (const c of [plain, noCert, wrongCa, good]) c.close();
      // the edge in the stack talks mTLS too
      expect((await nodeTls(stack.port(), 'ok.test', certs.ca)).body).toBe('hello from upstream ok.test\n');
      // the CLI with and without a client certificate
      const base = ['policy', 'get', '--server', address, '--token', 'stack-token', '--ca', certs.caPath];
      expect((await cli([...base, '--cert', certs.clientCertPath, '--key', certs.clientKeyPath])).code).toBe(0);
      const refused = await cli(base);
      expect(refused.code).toBe(1);
      expect(refused.out).toContain('UNAVAILABLE');
    } finally {
      await stack.stop();
    }
  });

  it('Redis over TLS with an ACL user; a wrong password stops the service at start', async () => {
    const redis = await startRedis({ tls: { certPath: certs.certPath, keyPath: certs.keyPath, caPath: certs.caPath }, users: [['portcullis', 's3cret-pw']] });
    const log = pino({ level: 'silent' });
    const url = (pw: string) => redis.url.replace('rediss://', `rediss://portcullis:${pw}@`).replace('127.0.0.1', 'localhost');
    try {
      const ok = await startPolicyService(parseConfig({ redis: { url: url('s3cret-pw'), tls: { ca: certs.caPath } }, policy: { listen: '127.0.0.1:0', profile: join(dir, 'p.yaml'), adminToken: 'doors-token' } }), { log });
      expect(await healthStatus(ok.address)).toBe('SERVING');
      expect(ok.store.kind).toBe('redis');
      expect((await ok.store.current())?.profileName).toBe('doors');
      await ok.stop();
      await expect(
        (async () => {
          const bad = await startPolicyService(parseConfig({ redis: { url: url('wrong'), tls: { ca: certs.caPath } }, policy: { listen: '127.0.0.1:0', profile: join(dir, 'p.yaml') } }), { log });
          const status = await healthStatus(bad.address);
          await bad.stop();
          return status;
        })(),
      ).rejects.toBeDefined();
    } finally {
      await redis.stop();
    }
  });

  it('the admin token and the Redis password never appear in the logs', async () => {
    const redis = await startRedis({ users: [['portcullis', 'redis-pw-XYZZY']] });
    const port = await freePort();
    const config = writeConfig(dir, 'secret.yaml', { redis: { url: redis.url.replace('redis://', 'redis://portcullis:redis-pw-XYZZY@') }, policy: { listen: `127.0.0.1:${port}`, profile: join(dir, 'p.yaml'), adminToken: 'admin-token-PLUGH' }, log: { level: 'debug' } });
    const p = startApp('policy-service', ['--config', config]);
    try {
      await waitForOutput(p, 'policy-service listening');
      const wrong = await cli(['policy', 'get', '--server', `127.0.0.1:${port}`, '--token', 'not-the-token']);
      expect(wrong.code).toBe(1);
      const right = await cli(['policy', 'get', '--config', config]);
      expect(right.code).toBe(0);
      await waitFor(() => p.output.join('').includes('admin.refused'), 3_000);
      const out = p.output.join('');
      expect(out).not.toContain('admin-token-PLUGH');
      expect(out).not.toContain('redis-pw-XYZZY');
    } finally {
      await p.stop();
      await redis.stop();
    }
  });
});
