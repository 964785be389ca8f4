// A real TLS upstream for tests that records the raw bytes each connection sent before TLS parsed them.
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { TestCerts } from './certs';

export interface TlsUpstream {
  port: number;
  /** Raw bytes received on each accepted connection, in order of arrival. */
  connections: { raw: Buffer[]; servername?: string | false }[];
  close(): Promise<void>;
}

/**
 * Accepts TCP, keeps a copy of every byte, then hands the socket to TLS. Each TLS session gets
 * `reply(servername)` and the server half-closes after it, so clients can read to EOF.
 */
export function startTlsUpstream(certs: TestCerts, host = '127.0.0.1', reply: (sn: string) => string = (sn) => `hello from upstream ${sn}\n`): Promise<TlsUpstream> {
  const connections: TlsUpstream['connections'] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((raw) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    const record: TlsUpstream['connections'][number] = { raw: [] };
    connections.push(record);
    // TLS over a plain JS Duplex, not the socket itself: given a net.Socket, TLS reads its handle
    // natively and JS never sees the bytes we want to record.
    const wire = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        raw.write(chunk, cb);
      },
      final(cb) {
        raw.end();
        cb();
      },
    });
    raw.on('data', (d: Buffer) => {
      record.raw.push(Buffer.from(d));
      wire.push(d);
    });
    raw.on('end', () => wire.push(null));
    raw.on('close', () => wire.destroy());
    const tls = new TLSSocket(wire, { isServer: true, cert: certs.cert, key: certs.key });
    tls.on('secure', () => {
      record.servername = tls.servername ?? false;
      tls.end(reply(tls.servername || ''));
    });
    tls.on('data', () => undefined);
    tls.on('error', () => raw.destroy());
    raw.on('error', () => undefined);
  });
  return new Promise((resolve) =>
    server.listen(0, host, () => {
      const addr = server.address();
      resolve({
        port: typeof addr === 'object' && addr ? addr.port : 0,
        connections,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    }),
  );
}
