import { describe, expect, it } from 'vitest';
import { SsrfGuard } from './ssrf';

const guard = new SsrfGuard({ allowPrivate: [], ownAddresses: ['203.0.114.7'] });

describe('SSRF guard', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['10.1.2.3', 'rfc1918'],
    ['172.31.255.255', 'rfc1918'],
    ['192.168.1.1', 'rfc1918'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.254', 'cgnat'],
    ['169.254.169.254', 'link-local'],
    ['224.0.0.251', 'multicast'],
    ['0.0.0.0', 'this-network'],
    ['255.255.255.255', 'reserved'],
    ['198.18.0.1', 'benchmark'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fd00::1', 'unique-local'],
    ['fe80::1', 'link-local'],
    ['ff02::1', 'multicast'],
    ['::ffff:10.0.0.1', 'ipv4-mapped'],
    ['::ffff:8.8.8.8', 'ipv4-mapped'],
    ['64:ff9b::a9fe:a9fe', 'nat64'],
    ['2002:a9fe:a9fe::1', '6to4'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'teredo'],
    ['203.0.114.7', 'own-address'],
  ])('refuses %s (%s)', (address, range) => {
    expect(guard.check(address, [])).toEqual({ ok: false, range });
  });

  it.each(['8.8.8.8', '140.82.112.3', '100.128.0.1', '172.32.0.1', '2606:4700::1111', '2a00:1450:4001::200e'])('lets public %s through', (address) => {
    expect(guard.check(address, [])).toEqual({ ok: true });
  });

  it("honours the rule's allowPrivate and the global exemption, and nothing wider", () => {
    expect(guard.check('10.0.0.5', ['10.0.0.0/24'])).toEqual({ ok: true });
    expect(guard.check('10.0.1.5', ['10.0.0.0/24'])).toEqual({ ok: false, range: 'rfc1918' });
    expect(guard.check('fd00::5', ['fd00::/64'])).toEqual({ ok: true });
    expect(guard.check('169.254.169.254', ['169.254.169.254'])).toEqual({ ok: true });
    const g = new SsrfGuard({ allowPrivate: ['127.0.0.0/8'], ownAddresses: [] });
    expect(g.check('127.0.0.2', [])).toEqual({ ok: true });
    expect(g.check('::1', [])).toEqual({ ok: false, range: 'loopback' });
  });
});
