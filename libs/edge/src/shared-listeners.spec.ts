import { connect } from 'node:net';
import { closeSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bindSharedListener } from './native-relay';
import { inheritedListenerFd, isListeningMessage, nativeIntakeFits, SHARED_LISTENERS_ENV } from './shared-listeners';

describe('shared listeners (native intake in edge workers)', () => {
  it('a worker finds its listener by name in the environment, and nothing it cannot trust', () => {
    const env = { [SHARED_LISTENERS_ENV]: JSON.stringify({ tls: 4, ssh: 5 }) };
    expect(inheritedListenerFd('tls', env)).toBe(4);
    expect(inheritedListenerFd('ssh', env)).toBe(5);
    expect(inheritedListenerFd('other', env)).toBeUndefined();
    expect(inheritedListenerFd('tls', {})).toBeUndefined();
    for (const bad of ['{', '{"tls":"4"}', '{"tls":1}', '{"tls":4.5}', '[]', 'null']) expect(inheritedListenerFd('tls', { [SHARED_LISTENERS_ENV]: bad })).toBeUndefined();
  });

  it('only SNI listeners without a PROXY header, on the native relay, are shared', () => {
    const edge = { relay: 'native' } as Parameters<typeof nativeIntakeFits>[0];
    const l = (x: object): Parameters<typeof nativeIntakeFits>[1] => ({ name: 'l', listen: '127.0.0.1:0', mode: 'sni', ...x }) as Parameters<typeof nativeIntakeFits>[1];
    expect(nativeIntakeFits(edge, l({}))).toBe(true);
    expect(nativeIntakeFits(edge, l({ proxyProtocol: true }))).toBe(false);
    expect(nativeIntakeFits(edge, l({ mode: 'connect' }))).toBe(false);
    expect(nativeIntakeFits({ ...edge, relay: 'node' }, l({}))).toBe(false);
  });

  it('the listening message is told apart from the metrics queries on the same channel', () => {
    expect(isListeningMessage({ portcullis: 'native-listening', listener: 'tls' })).toBe(true);
    expect(isListeningMessage({ portcullis: 'answer', id: 1 })).toBe(false);
    expect(isListeningMessage('native-listening')).toBe(false);
    expect(isListeningMessage(null)).toBe(false);
  });

  it('bindListen opens a socket that takes connections into its queue while nothing accepts', async (ctx) => {
    const bound = bindSharedListener('127.0.0.1', 0, 16);
    if (!bound) return ctx.skip(); // the relay addon is not built
    try {
      expect(bound.port).toBeGreaterThan(0);
      // the kernel completes the handshake into the backlog: the connect succeeds
      await new Promise<void>((resolve, reject) => {
        const s = connect(bound.port, '127.0.0.1', () => {
          s.destroy();
          resolve();
        });
        s.on('error', reject);
      });
    } finally {
      closeSync(bound.fd);
    }
  });
});
