import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from './ip';

describe('parseIpv4', () => {
  it.each([
    ['1.2.3.4', [1, 2, 3, 4]],
    ['0.0.0.0', [0, 0, 0, 0]],
    ['255.255.255.255', [255, 255, 255, 255]],
    ['256.1.1.1', undefined],
    ['01.2.3.4', undefined],
    ['1.2.3', undefined],
    ['1.2.3.4.5', undefined],
    ['1.2.3.', undefined],
    ['0x1.2.3.4', undefined],
    [' 1.2.3.4', undefined],
    ['', undefined],
  ])('%s', (text, bytes) => {
    const r = parseIpv4(text);
    expect(r ? Array.from(r) : undefined).toEqual(bytes);
  });
});

describe('parseIpv6 and formatIpv6 (RFC 5952)', () => {
  it.each([
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ])('%s → %s', (text, canonical) => {
    const r = parseIpv6(text);
    expect(r && formatIpv6(r)).toBe(canonical);
  });

  it.each(['', ':', ':::', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::1', '1:2:3:4:5:6:7', '::1%eth0', '[::1]', '1.2.3.4', '::1.2.3', '1:2:3:4:5:6:7:1.2.3.4'])('refuses %j', (text) => {
    expect(parseIpv6(text)).toBeUndefined();
  });

  it('agrees with the WHATWG URL parser on every generated address', () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        const r = parseIpv6(text);
        expect(r).toBeDefined();
        if (r) expect(formatIpv6(r)).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1));
      }),
      { numRuns: 2000 },
    );
  });

  it('formats what it parses, and parses what it formats', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 4, maxLength: 4 }), (v6, v4) => {
        expect(Array.from(parseIpv6(formatIpv6(v6)) ?? [])).toEqual(Array.from(v6));
        expect(Array.from(parseIpv4(formatIpv4(v4)) ?? [])).toEqual(Array.from(v4));
      }),
      { numRuns: 2000 },
    );
  });
});
