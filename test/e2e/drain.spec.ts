// SIGTERM: the edge stops accepting, lets live flows finish for up to drainTimeoutMs, then closes
// them with reason `shutdown`, writes their records and exits 0.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import type { Server, TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, makeCerts, waitFor } from '@portcullis/testing';
import type { TestCerts } from '@portcullis/testing';
import { readAudit } from '../support/audit-log';
import { startApp, waitForOutput, writeConfig } from '../support/processes';
import type { Proc } from '../support/processes';

describe('drain on SIGTERM', () => {
  let certs: TestCerts;
  let echo: Server;
  let echoPort: number;
  const cleanup: (() => unknown)[] = [];

  beforeAll(async () => {
    certs = makeCerts(['live.test']);
    echo = createTlsServer({ cert: certs.cert, key: certs.key }, (s) => s.on('data', (d: Buffer) => s.write(d)).on('error', () => undefined));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    echoPort = (echo.address() as AddressInfo).port;
    cleanup.push(() => echo.close());
  });
  afterEach(async () => {
    for (const c of cleanup.splice(1).reverse()) await c();
  });

  async function stack(drainTimeoutMs: number): Promise<{ proc: Proc; port: number; log: string }> {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-drain-'));
    const [port, policyPort] = [await freePort(), await freePort()];
    writeFileSync(join(dir, 'p.yaml'), 'apiVersion: portcullis/v1\nkind: FqdnFilterProfile\nname: drain\ndefaultAction: deny\nnoSni: deny\nech: deny\nrules:\n  - id: live\n    action: allow\n    fqdns: ["live.test"]\n    allowPrivate: ["127.0.0.0/8"]\n');
    const log = join(dir, 'audit.log');
    const config = writeConfig(dir, 'c.yaml', {
      policy: { listen: `127.0.0.1:${policyPort}`, profile: join(dir, 'p.yaml'), adminToken: 'drain-token' },
      edge: { listeners: [{ name: 'tls', mode: 'sni', listen: `127.0.0.1:${port}`, upstreamPort: echoPort }], resolve: { 'live.test': ['127.0.0.1'] }, drainTimeoutMs, spoolDir: join(dir, 'spool') },
      audit: { log },
    });
    const proc = startApp('cli', ['run', 'all', '--config', config]);
    cleanup.push(() => proc.kill(), () => rmSync(dir, { recursive: true, force: true }));
    await waitForOutput(proc, 'Portcullis is running');
    return { proc, port, log };
  }

  async function live(port: number): Promise<TLSSocket> {
    const s = tlsConnect({ port, host: '127.0.0.1', servername: 'live.test', ca: certs.ca });
    s.on('error', () => undefined);
    await new Promise((r) => s.once('secureConnect', r));
    return s;
  }

  async function roundTrip(s: TLSSocket, text: string): Promise<string> {
    s.write(text);
    return new Promise((r) => s.once('data', (d: Buffer) => r(d.toString())));
  }

  it('a live flow keeps working during the drain, new connections are refused, and the process exits 0 once it ends', async () => {
    const { proc, port, log } = await stack(10_000);
    const s = await live(port);
    expect(await roundTrip(s, 'before')).toBe('before');
    const exited = new Promise<number | null>((r) => proc.child.once('exit', (code) => r(code)));
    proc.child.kill('SIGTERM');
    await waitForOutput(proc, 'edge draining');
    expect(await roundTrip(s, 'during')).toBe('during');
    const refused = await new Promise<string>((r) => {
      const c = connect({ port, host: '127.0.0.1' });
      c.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'));
      c.on('connect', () => {
        c.destroy();
        r('connected');
      });
    });
    expect(refused).toBe('ECONNREFUSED');
    const t0 = Date.now();
    s.end();
    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5_000); // well before the 10 s drain timeout
    const end = readAudit(log).find((l) => l.event === 'flow.end' && l.sni === 'live.test');
    expect(end?.closeReason).toMatch(/^(client-closed|upstream-closed)$/);
  });

  it('a flow still open when drainTimeoutMs runs out is closed with reason shutdown and recorded', async () => {
    const { proc, port, log } = await stack(1_000);
    const s = await live(port);
    expect(await roundTrip(s, 'hi')).toBe('hi');
    const closed = new Promise((r) => s.once('close', r));
    const exited = new Promise<number | null>((r) => proc.child.once('exit', (code) => r(code)));
    const t0 = Date.now();
    proc.child.kill('SIGTERM');
    await closed;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(await exited).toBe(0);
    await waitFor(() => readAudit(log).some((l) => l.event === 'flow.end'), 2_000).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${proc.output.join('')}`);
    });
    expect(readAudit(log).find((l) => l.event === 'flow.end')).toMatchObject({ sni: 'live.test', closeReason: 'shutdown' });
  });
});
