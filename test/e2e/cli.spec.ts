// `portcullis run all` in both modes (embedded in-memory and on Redis), and the policy commands.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, makeCerts, startRedis, startTlsUpstream } from '@portcullis/testing';
import type { TestCerts, TestRedis, TlsUpstream } from '@portcullis/testing';
import { waitForAudit } from '../support/audit-log';
import { cli } from '../support/cli';
import { startApp, waitForOutput, writeConfig } from '../support/processes';
import type { Proc } from '../support/processes';
import { nodeTls } from '../support/tls-client';

const PROFILE = `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: cli
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: ok
    action: allow
    fqdns: [".ok.test"]
    allowPrivate: ["127.0.0.0/8"] # the test upstreams live on loopback
`;


describe.each([
  { mode: 'embedded (no redis.url)', useRedis: false },
  { mode: 'on Redis', useRedis: true },
])('portcullis run all, $mode', ({ useRedis }) => {
  let dir: string;
  let redis: TestRedis | undefined;
  let certs: TestCerts;
  let upstream: TlsUpstream;
  let stack: Proc;
  let configPath: string;
  let edgePort: number;
  let policyPort: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-cli-'));
    if (useRedis) redis = await startRedis();
    certs = makeCerts(['ok.test', 'no.test']);
    upstream = await startTlsUpstream(certs);
    edgePort = await freePort();
    policyPort = await freePort();
    writeFileSync(join(dir, 'profile.yaml'), PROFILE);
    configPath = writeConfig(dir, 'c.yaml', {
      ...(redis ? { redis: { url: redis.url } } : {}),
      policy: { listen: `127.0.0.1:${policyPort}`, profile: join(dir, 'profile.yaml'), adminToken: 'cli-token-123' },
      edge: { listeners: [{ name: 'tls', mode: 'sni', listen: `127.0.0.1:${edgePort}`, upstreamPort: upstream.port }], resolve: { 'ok.test': ['127.0.0.1'], 'no.test': ['127.0.0.1'] }, spoolDir: join(dir, 'spool') },
      audit: { log: join(dir, 'audit.log') },
    });
    stack = startApp('cli', ['run', 'all', '--config', configPath]);
    await waitForOutput(stack, 'Portcullis is running');
  });

  afterAll(async () => {
    expect(await stack?.stop()).toBe(0);
    await upstream?.close();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`says which mode it runs in`, async () => {
    if (!useRedis) await waitForOutput(stack, 'embedded mode: no redis.url');
    else await new Promise((r) => setTimeout(r, 500)); // log lines are flushed at least every 200 ms
    expect(stack.output.join('').includes('embedded mode: no redis.url')).toBe(!useRedis);
  });

  it('relays an allowed name, refuses another, and audits both', async () => {
    const ok = await nodeTls(edgePort, 'ok.test', certs.ca);
    expect(ok.body).toBe('hello from upstream ok.test\n');
    const no = await nodeTls(edgePort, 'no.test', certs.ca);
    expect(no.errorCode).toBe('ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    const lines = await waitForAudit(join(dir, 'audit.log'), () => true, 4);
    expect(lines.filter((l) => l.event === 'flow.start').map((l) => `${l.sni}:${l.verdict}`).sort()).toEqual(['no.test:deny', 'ok.test:allow']);
  });

  it('policy commands: get, explain, a refused apply (exit 1), an accepted apply, and a wrong token', async () => {
    const get = await cli(['policy', 'get', '--config', configPath]);
    expect(get.code).toBe(0);
    expect(get.out).toContain('# version 1');
    expect(get.out).toContain('id: ok');

    const explain = await cli(['policy', 'explain', 'www.ok.test', '--config', configPath]);
    expect(explain.code).toBe(0);
    expect(explain.out).toMatch(/www\.ok\.test: allow \(rule, rule ok\)/);

    writeFileSync(join(dir, 'bad.yaml'), PROFILE.replace('".ok.test"', '"ok..test"'));
    const bad = await cli(['policy', 'apply', join(dir, 'bad.yaml'), '--config', configPath]);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('rules[0].fqdns[0]');

    writeFileSync(join(dir, 'more.yaml'), PROFILE.replace('".ok.test"', '".ok.test", "no.test"'));
    const apply = await cli(['policy', 'apply', join(dir, 'more.yaml'), '--comment', 'allow no.test', '--config', configPath]);
    expect(apply.code).toBe(0);
    expect(apply.out).toContain('applied: version 2');
    await new Promise((r) => setTimeout(r, 300));
    const now = await nodeTls(edgePort, 'no.test', certs.ca);
    expect(now.body).toBe('hello from upstream no.test\n');

    const wrong = await cli(['policy', 'get', '--server', `127.0.0.1:${policyPort}`, '--token', 'nope']);
    expect(wrong.code).toBe(1);
    expect(wrong.out).toContain('UNAUTHENTICATED');
  });
});
