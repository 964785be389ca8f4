// IPv4/IPv6 addresses and CIDRs as four 32-bit words. IPv4 is held in its IPv4-mapped IPv6 form
// (::ffff:a.b.c.d), so "10.1.2.3" and "::ffff:10.1.2.3" are the same address and an IPv4 CIDR /n is
// the mapped /(96+n). Parsing an address writes into a caller's buffer: no allocation per decision.

export interface Cidr {
  /** Network words (already masked). */
  net: Int32Array;
  mask: Int32Array;
  /** Prefix length in the 128-bit space. */
  prefix: number;
  /** Canonical text: IPv4 form for IPv4 and IPv4-mapped networks, RFC 5952 for IPv6; always with /len. */
  text: string;
}

export type CidrResult = { ok: true; cidr: Cidr } | { ok: false; message: string; fix?: string };

const groups = new Int32Array(8);

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Strict dotted quad in s[start, end): four decimal parts 0..255, no leading zeros. Returns the value or -1. */
function parseV4(s: string, start: number, end: number): number {
  let value = 0;
  let parts = 0;
  let i = start;
  while (parts < 4) {
    let part = 0;
    let digits = 0;
    const first = i;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      part = part * 10 + (c - 48);
      digits++;
      i++;
    }
    if (digits === 0 || digits > 3 || part > 255) return -1;
    if (digits > 1 && s.charCodeAt(first) === 48) return -1;
    value = value * 256 + part;
    parts++;
    if (parts < 4) {
      if (i >= end || s.charCodeAt(i) !== 46) return -1;
      i++;
    }
  }
  return i === end ? value : -1;
}

function parseV6(s: string, start: number, end: number, out: Int32Array): boolean {
  let count = 0;
  let gap = -1;
  let i = start;
  if (end - start >= 2 && s.charCodeAt(i) === 58 && s.charCodeAt(i + 1) === 58) {
    gap = 0;
    i += 2;
  }
  while (i < end) {
    let j = i;
    let v = 0;
    while (j < end && j - i < 5) {
      const h = hexVal(s.charCodeAt(j));
      if (h < 0) break;
      v = v * 16 + h;
      j++;
    }
    if (j < end && s.charCodeAt(j) === 46) {
      // embedded IPv4 tail
      if (count > 6) return false;
      const v4 = parseV4(s, i, end);
      if (v4 < 0) return false;
      groups[count++] = v4 >>> 16;
      groups[count++] = v4 & 0xffff;
      i = end;
      break;
    }
    if (j === i || j - i > 4 || count >= 8) return false;
    groups[count++] = v;
    if (j === end) {
      i = end;
      break;
    }
    if (s.charCodeAt(j) !== 58) return false;
    if (j + 1 < end && s.charCodeAt(j + 1) === 58) {
      if (gap >= 0) return false;
      gap = count;
      i = j + 2;
    } else {
      i = j + 1;
      if (i === end) return false;
    }
  }
  if (gap < 0) {
    if (count !== 8) return false;
  } else {
    if (count > 7) return false;
    const fill = 8 - count;
    for (let k = count - 1; k >= gap; k--) groups[k + fill] = groups[k] ?? 0;
    for (let k = gap; k < gap + fill; k++) groups[k] = 0;
  }
  for (let w = 0; w < 4; w++) out[w] = (((groups[2 * w] ?? 0) << 16) | (groups[2 * w + 1] ?? 0)) | 0;
  return true;
}

/**
 * Parses an IPv4 or IPv6 address into `out` (four words). A `%zone` suffix is ignored when
 * `allowZone` (addresses from sockets may carry one). Returns false when it is not an address.
 */
export function parseIpInto(s: string, out: Int32Array, allowZone = false): boolean {
  let end = s.length;
  if (end === 0 || end > 64) return false;
  let colon = false;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 58) colon = true;
    else if (c === 37) {
      if (!allowZone || !colon) return false;
      end = i;
      break;
    }
  }
  if (!colon) {
    const v4 = parseV4(s, 0, end);
    if (v4 < 0) return false;
    out[0] = 0;
    out[1] = 0;
    out[2] = 0xffff;
    out[3] = v4 | 0;
    return true;
  }
  return parseV6(s, 0, end, out);
}

function isMapped(w: Int32Array): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === 0xffff;
}

function maskWord(prefix: number, w: number): number {
  const bits = Math.max(0, Math.min(32, prefix - 32 * w));
  return bits === 0 ? 0 : bits === 32 ? -1 : (-1 << (32 - bits)) | 0;
}

function formatV4(v: number): string {
  const u = v >>> 0;
  return `${u >>> 24}.${(u >>> 16) & 255}.${(u >>> 8) & 255}.${u & 255}`;
}

function formatV6(w: Int32Array): string {
  const g: number[] = [];
  for (let k = 0; k < 4; k++) {
    const u = (w[k] ?? 0) >>> 0;
    g.push(u >>> 16, u & 0xffff);
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let k = 0; k < 8; ) {
    if (g[k] !== 0) {
      k++;
      continue;
    }
    let e = k;
    while (e < 8 && g[e] === 0) e++;
    if (e - k > bestLen && e - k >= 2) {
      bestStart = k;
      bestLen = e - k;
    }
    k = e;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** Canonical text of an address held as words. */
export function formatIp(w: Int32Array): string {
  return isMapped(w) ? formatV4(w[3] ?? 0) : formatV6(w);
}

/**
 * A CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a bare address (= /32 or /128). Host bits must be zero:
 * `10.1.2.3/8` is refused rather than silently widened or narrowed.
 */
export function parseCidr(raw: string): CidrResult {
  const s = raw.trim();
  if (s !== raw) return { ok: false, message: `"${raw}" has surrounding spaces`, fix: `write ${s}` };
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  const net = new Int32Array(4);
  if (!parseIpInto(addrText, net)) {
    const leadingZero = /(^|\.)0\d/.test(addrText) && !addrText.includes(':');
    return leadingZero
      ? { ok: false, message: `"${raw}" has a part with a leading zero (octal or decimal?)`, fix: `write ${addrText.replace(/(^|\.)0+(\d)/g, '$1$2')}${slash < 0 ? '' : s.slice(slash)}` }
      : { ok: false, message: `"${raw}" is not an IPv4 or IPv6 address or CIDR` };
  }
  const v4Written = !addrText.includes(':');
  const maxLen = v4Written ? 32 : 128;
  let len = maxLen;
  if (slash >= 0) {
    const lenText = s.slice(slash + 1);
    if (!/^(0|[1-9]\d{0,2})$/.test(lenText) || Number(lenText) > maxLen) {
      return { ok: false, message: `"${raw}" has prefix length "${lenText}"; it must be 0..${maxLen}` };
    }
    len = Number(lenText);
  }
  const prefix = v4Written ? 96 + len : len;
  const mask = new Int32Array(4);
  let hostBits = false;
  for (let w = 0; w < 4; w++) {
    mask[w] = maskWord(prefix, w);
    const masked = ((net[w] ?? 0) & (mask[w] ?? 0)) | 0;
    if (masked !== net[w]) hostBits = true;
    net[w] = masked;
  }
  const text = isMapped(net) && prefix >= 96 ? `${formatV4(net[3] ?? 0)}/${prefix - 96}` : `${formatV6(net)}/${prefix}`;
  if (hostBits) {
    const host = v4Written ? `${addrText}/32` : `${addrText}/128`;
    return { ok: false, message: `"${raw}" has host bits set after /${len}`, fix: `write ${text} for the network, or ${host} for the one address` };
  }
  return { ok: true, cidr: { net, mask, prefix, text } };
}

/** Whether `addr` (four words from parseIpInto) lies in the CIDR stored at `table[offset..offset+8)` as net then mask. */
export function cidrTableContains(table: Int32Array, offset: number, addr: Int32Array): boolean {
  for (let w = 0; w < 4; w++) {
    if ((((addr[w] ?? 0) & (table[offset + 4 + w] ?? 0)) | 0) !== table[offset + w]) return false;
  }
  return true;
}
