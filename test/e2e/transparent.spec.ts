// Transparent mode, for real: a client in one network namespace connects to a server address in
// another; iptables REDIRECT there sends the connection to the edge, which reads SO_ORIGINAL_DST,
// decides on the SNI and refuses an SNI that does not resolve to the original destination.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, waitFor } from '@portcullis/testing';
import type { TestCerts } from '@portcullis/testing';
import { readAudit } from '../support/audit-log';
import { ROOT, writeConfig } from '../support/processes';

function can(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for network namespaces';
  for (const tool of ['ip', 'iptables', 'openssl']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`]);
    } catch {
      return `needs ${tool}`;
    }
  }
  return undefined;
}
const missing = can();
if (missing) console.warn(`transparent-mode test skipped: ${missing}`);

const id = Math.random().toString(36).slice(2, 7);
const NS_CLIENT = `pc-cli-${id}`;
const NS_EDGE = `pc-edge-${id}`;
const SERVER = '10.231.1.10';

function sh(cmd: string): string {
  return execFileSync('sh', ['-c', cmd], { encoding: 'utf8' });
}

describe.skipIf(missing !== undefined)('transparent mode in network namespaces', () => {
  let dir: string;
  let certs: TestCerts;
  const procs: ChildProcess[] = [];
  let auditLog: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-tproxy-'));
    certs = makeCerts(['real.test', 'forged.test']);
    sh(`ip netns add ${NS_CLIENT} && ip netns add ${NS_EDGE}`);
    sh(`ip link add vc-${id} type veth peer name ve-${id}`);
    sh(`ip link set vc-${id} netns ${NS_CLIENT} && ip link set ve-${id} netns ${NS_EDGE}`);
    sh(`ip -n ${NS_CLIENT} addr add 10.231.0.1/24 dev vc-${id} && ip -n ${NS_CLIENT} link set vc-${id} up && ip -n ${NS_CLIENT} link set lo up`);
    sh(`ip -n ${NS_EDGE} addr add 10.231.0.2/24 dev ve-${id} && ip -n ${NS_EDGE} link set ve-${id} up && ip -n ${NS_EDGE} link set lo up`);
    sh(`ip -n ${NS_EDGE} addr add ${SERVER}/32 dev lo`);
    sh(`ip -n ${NS_CLIENT} route add 10.231.1.0/24 via 10.231.0.2`);
    // the redirect: connections arriving for port 443 go to the edge's transparent listener
    sh(`ip netns exec ${NS_EDGE} iptables -t nat -A PREROUTING -i ve-${id} -p tcp --dport 443 -j REDIRECT --to-ports 15001`);

    // the real server, inside the edge's namespace
    const server = spawn('ip', ['netns', 'exec', NS_EDGE, process.execPath, '-e', `
      const tls = require('node:tls'); const fs = require('node:fs');
      tls.createServer({ cert: fs.readFileSync(${JSON.stringify(certs.certPath)}), key: fs.readFileSync(${JSON.stringify(certs.keyPath)}) }, (s) => s.end('hello from ' + s.servername + '\\n'))
        .listen(443, ${JSON.stringify(SERVER)}, () => console.log('server ready'));`], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(server);
    writeFileSync(join(dir, 'p.yaml'), 'apiVersion: portcullis/v1\nkind: FqdnFilterProfile\nname: tproxy\ndefaultAction: deny\nnoSni: deny\nech: deny\nrules:\n  - id: lab\n    action: allow\n    fqdns: ["real.test", "forged.test"]\n    allowPrivate: ["10.231.0.0/16"]\n');
    auditLog = join(dir, 'audit.log');
    const config = writeConfig(dir, 'c.yaml', {
      policy: { listen: '127.0.0.1:50051', profile: join(dir, 'p.yaml'), adminToken: 'tproxy-token' },
      edge: { listeners: [{ name: 'tproxy', mode: 'transparent', listen: '0.0.0.0:15001' }], resolve: { 'real.test': [SERVER], 'forged.test': ['10.231.1.99'] }, spoolDir: join(dir, 'spool') },
      audit: { log: auditLog },
    });
    const edge = spawn('ip', ['netns', 'exec', NS_EDGE, process.execPath, join(ROOT, 'dist/apps/cli/main.js'), 'run', 'all', '--config', config], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(edge);
    let out = '';
    edge.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    edge.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    let ready = '';
    server.stdout?.on('data', (d: Buffer) => (ready += d.toString()));
    await waitFor(() => out.includes('Portcullis is running') && ready.includes('server ready'), 15_000);
  });

  afterAll(() => {
    for (const p of procs) p.kill('SIGKILL');
    for (const ns of [NS_CLIENT, NS_EDGE]) {
      try {
        sh(`ip netns del ${ns}`);
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const client = (servername: string): string => {
    try {
      return sh(`ip netns exec ${NS_CLIENT} openssl s_client -connect ${SERVER}:443 -servername ${servername} -CAfile ${certs.caPath} -verify_return_error -ign_eof </dev/null 2>&1`);
    } catch (err) {
      return String((err as { stdout?: string }).stdout ?? err);
    }
  };

  it('an SNI that resolves to the original destination is relayed to it', async () => {
    const out = client('real.test');
    expect(out).toContain('Verify return code: 0 (ok)');
    expect(out).toContain('hello from real.test');
    await waitFor(() => readAudit(auditLog).some((l) => l.event === 'flow.start' && l.sni === 'real.test'), 5_000);
    expect(readAudit(auditLog).find((l) => l.event === 'flow.start' && l.sni === 'real.test')).toMatchObject({ verdict: 'allow', mode: 'transparent', dst: `${SERVER}:443`, src: expect.stringMatching(/^10\.231\.0\.1:/) });
  });

  it('a forged SNI (an allowed name that does not resolve to the original destination) is refused: sni-mismatch', async () => {
    const out = client('forged.test');
    expect(out).toMatch(/alert access denied/i);
    await waitFor(() => readAudit(auditLog).some((l) => l.event === 'flow.start' && l.sni === 'forged.test'), 5_000);
    expect(readAudit(auditLog).find((l) => l.event === 'flow.start' && l.sni === 'forged.test')).toMatchObject({ verdict: 'deny', reason: 'sni-mismatch' });
  });
});
