import { describe, expect, it } from 'vitest';
import { formatIp, parseCidr, parseIpInto } from './cidr';

describe('parseIpInto', () => {
  const table: [string, string | false][] = [
    ['10.1.2.3', '10.1.2.3'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['::FFFF:a01:203', '10.1.2.3'],
    ['::', '::'],
    ['::1', '::1'],
    ['2001:db8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1::', '1::'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
    ['256.1.1.1', false],
    ['1.2.3', false],
    ['01.2.3.4', false],
    ['1.2.3.4.5', false],
    ['1:2:3:4:5:6:7:8:9', false],
    ['1::2::3', false],
    [':1', false],
    ['1:', false],
    ['12345::', false],
    ['g::1', false],
    ['fe80::1%eth0', false],
    ['', false],
  ];
  it.each(table)('%s -> %s', (text, expected) => {
    const w = new Int32Array(4);
    const ok = parseIpInto(text, w);
    expect(ok ? formatIp(w) : false).toBe(expected);
  });

  it('ignores a zone only when asked (addresses from sockets)', () => {
    const w = new Int32Array(4);
    expect(parseIpInto('fe80::1%eth0', w, true)).toBe(true);
    expect(formatIp(w)).toBe('fe80::1');
    expect(parseIpInto('10.0.0.1%eth0', w, true)).toBe(false);
  });
});

describe('parseCidr', () => {
  const good: [string, string][] = [
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['10.1.2.3', '10.1.2.3/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['2001:DB8::/32', '2001:db8::/32'],
    ['::/0', '::/0'],
    ['::1', '::1/128'],
    ['::ffff:10.0.0.0/104', '10.0.0.0/8'],
  ];
  it.each(good)('%s -> %s', (text, canonical) => {
    const r = parseCidr(text);
    expect(r.ok && r.cidr.text).toBe(canonical);
  });

  const bad: [string, RegExp][] = [
    ['10.0.0.0/33', /0\.\.32/],
    ['10.0.0.0/', /prefix length/],
    ['10.0.0.0/08', /prefix length/],
    ['10.1.2.3/8', /host bits/],
    ['2001:db8::1/32', /host bits/],
    ['2001:db8::/129', /0\.\.128/],
    ['example.com', /not an IPv4 or IPv6/],
    ['010.0.0.0/8', /leading zero/],
    [' 10.0.0.0/8', /surrounding spaces/],
  ];
  it.each(bad)('refuses %s', (text, message) => {
    const r = parseCidr(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(message);
  });
});
