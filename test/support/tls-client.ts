// Real TLS clients for tests: Node's tls through a tap that records every byte the client sent,
// and openssl s_client.
import { execFile } from 'node:child_process';
import { connect as netConnect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface TlsResult {
  ok: boolean;
  /** bytes the client application received after the handshake */
  body: string;
  errorCode?: string;
  /** every byte the client put on the wire */
  sent: Buffer;
  /** every byte the client received from the wire */
  received: Buffer;
}

/** Connects with Node's tls via a recording TCP tap in front of `port`. */
export async function nodeTls(port: number, servername: string, ca: Buffer, opts: { timeoutMs?: number } = {}): Promise<TlsResult> {
  const sent: Buffer[] = [];
  const received: Buffer[] = [];
  const tap = createServer({ allowHalfOpen: true }, (inbound) => {
    const out = netConnect({ port, host: '127.0.0.1', allowHalfOpen: true });
    inbound.on('data', (d: Buffer) => sent.push(Buffer.from(d)));
    out.on('data', (d: Buffer) => received.push(Buffer.from(d)));
    inbound.pipe(out);
    out.pipe(inbound);
    inbound.on('error', () => out.destroy());
    out.on('error', () => inbound.destroy());
  });
  await new Promise<void>((r) => tap.listen(0, '127.0.0.1', () => r()));
  const tapPort = (tap.address() as AddressInfo).port;
  try {
    return await new Promise<TlsResult>((resolve) => {
      let body = '';
      const finish = (ok: boolean, errorCode?: string): void => {
        clearTimeout(timer);
        // let the tap see the last bytes
        setTimeout(() => resolve({ ok, body, sent: Buffer.concat(sent), received: Buffer.concat(received), ...(errorCode ? { errorCode } : {}) }), 50);
      };
      const socket = tlsConnect({ port: tapPort, host: '127.0.0.1', servername, ca });
      const timer = setTimeout(() => {
        socket.destroy();
        finish(false, 'TIMEOUT');
      }, opts.timeoutMs ?? 5_000);
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (body += d));
      socket.on('end', () => {
        socket.end();
        finish(true);
      });
      socket.on('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
    });
  } finally {
    tap.close();
  }
}

export function opensslClient(port: number, servername: string, caPath: string, extra: string[] = []): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, '-CAfile', caPath, '-verify_return_error', '-ign_eof', ...extra], { timeout: 10_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}\n${stderr}` });
    });
    child.stdin?.end();
  });
}
