import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { DetectedProtocol } from './protocol';
import { HTTP_METHODS, detectProtocol } from './protocol';
import { capturedHellos } from './fixtures/hellos';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const hex = (s: string): Buffer => Buffer.from(s, 'hex');

const rows: [string, Buffer, DetectedProtocol][] = [
  ['nothing yet', Buffer.alloc(0), 'need-more'],
  ['0x16', hex('16'), 'need-more'],
  ['0x16 0x03', hex('1603'), 'need-more'],
  ['TLS 1.0 record', hex('160301'), 'tls'],
  ['TLS record version 3.0', hex('160300'), 'tls'],
  ['TLS record version 3.4', hex('160304'), 'tls'],
  ['record version 3.5', hex('160305'), 'unknown'],
  ['record version 2.1', hex('160201'), 'unknown'],
  ['alert record', hex('150303'), 'unknown'],
  ['SSLv2 hello', hex('802b0100'), 'unknown'],
  ['S', b('S'), 'need-more'],
  ['SSH', b('SSH'), 'need-more'],
  ['SSH-', b('SSH-'), 'ssh'],
  ['SSH banner', b('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n'), 'ssh'],
  ['SSX', b('SSX'), 'unknown'],
  ['ssh- lowercase', b('ssh-2.0'), 'unknown'],
  ['G', b('G'), 'need-more'],
  ['GET', b('GET'), 'need-more'],
  ['GET SP', b('GET '), 'http'],
  ['GET /', b('GET / HTTP/1.1\r\n'), 'http'],
  ['GETX', b('GETX'), 'unknown'],
  ['GET TAB', b('GET\t/'), 'unknown'],
  ['get lowercase', b('get / HTTP/1.1'), 'unknown'],
  ['P (POST, PUT, PATCH, PRI)', b('P'), 'need-more'],
  ['PU', b('PU'), 'need-more'],
  ['PUT SP', b('PUT /x'), 'http'],
  ['PATC', b('PATC'), 'need-more'],
  ['PATCH SP', b('PATCH /x'), 'http'],
  ['CONNECT', b('CONNECT example.test:443 HTTP/1.1\r\n'), 'http'],
  ['CONNEC', b('CONNEC'), 'need-more'],
  ['CONNECTX', b('CONNECTX'), 'unknown'],
  ['OPTIONS *', b('OPTIONS * HTTP/1.1'), 'http'],
  ['OPTIONS no space yet', b('OPTIONS'), 'need-more'],
  ['HEAD', b('HEAD / HTTP/1.0'), 'http'],
  ['DELETE', b('DELETE /x HTTP/1.1'), 'http'],
  ['TRACE', b('TRACE / HTTP/1.1'), 'http'],
  ['HTTP/2 preface', b('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), 'http'],
  ['SMTP server-first: client says EHLO', b('EHLO client.example\r\n'), 'unknown'],
  ['SOCKS5 greeting', hex('050100'), 'unknown'],
  ['PROXY v1', b('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), 'unknown'],
  ['NUL', hex('00'), 'unknown'],
  ['space', b(' '), 'unknown'],
];

describe('detectProtocol', () => {
  it.each(rows)('%s → %s', (_name, bytes, expected) => {
    expect(detectProtocol(bytes)).toBe(expected);
  });

  it('every captured hello is tls', () => {
    for (const h of Object.values(capturedHellos)) expect(detectProtocol(Buffer.from(h, 'hex'))).toBe('tls');
  });

  it('every method followed by a space is http, every proper prefix of one is need-more', () => {
    for (const m of HTTP_METHODS) {
      expect(detectProtocol(b(`${m} /`))).toBe('http');
      for (let i = 1; i <= m.length; i++) expect(detectProtocol(b(m.slice(0, i)))).toBe('need-more');
    }
  });

  it('never throws; need-more only for short prefixes; more bytes never undo an answer', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 12 }), fc.constantFrom(...rows.map((r) => Uint8Array.from(r[1])))), fc.uint8Array({ maxLength: 8 }), (bytes, more) => {
        const r = detectProtocol(bytes);
        if (r === 'need-more') expect(bytes.length).toBeLessThanOrEqual(8);
        else expect(detectProtocol(Buffer.concat([bytes, more]))).toBe(r);
        // a decided answer was decided by some prefix, and shorter prefixes were need-more or the same
        for (let i = 0; i < bytes.length; i++) {
          const p = detectProtocol(bytes.subarray(0, i));
          expect(p === 'need-more' || p === r).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
