import { describe, expect, it } from 'vitest';
import { relayOnThread } from './native-relay';

describe('relayOnThread: where the native relay runs', () => {
  it('PORTCULLIS_RELAY_THREAD decides when set, whatever the CPU count', () => {
    expect(relayOnThread({ PORTCULLIS_RELAY_THREAD: '1' }, 2)).toBe(true);
    expect(relayOnThread({ PORTCULLIS_RELAY_THREAD: '0' }, 64)).toBe(false);
  });
  it('unset (or anything else): its own thread only with more than two CPUs', () => {
    expect(relayOnThread({}, 1)).toBe(false);
    expect(relayOnThread({}, 2)).toBe(false);
    expect(relayOnThread({}, 4)).toBe(true);
    expect(relayOnThread({ PORTCULLIS_RELAY_THREAD: 'yes' }, 2)).toBe(false);
  });
});
