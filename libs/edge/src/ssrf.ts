// The SSRF guard: every resolved address is checked before dialling. Private, loopback, link-local
// (cloud metadata), multicast, reserved and IPv6 embeddings of IPv4 are refused unless the matching
// rule's allowPrivate (or edge.allowPrivate) covers the address.
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';

const V4: [string, number, string][] = [
  ['0.0.0.0', 8, 'this-network'],
  ['10.0.0.0', 8, 'rfc1918'],
  ['100.64.0.0', 10, 'cgnat'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'rfc1918'],
  ['192.0.0.0', 24, 'ietf-reserved'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, '6to4-relay'],
  ['192.168.0.0', 16, 'rfc1918'],
  ['198.18.0.0', 15, 'benchmark'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];

const V6: [string, number, string][] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['::ffff:0:0', 96, 'ipv4-mapped'],
  ['::', 96, 'ipv4-compatible'],
  ['64:ff9b::', 96, 'nat64'],
  ['64:ff9b:1::', 48, 'nat64-local'],
  ['100::', 64, 'discard'],
  ['2001::', 32, 'teredo'],
  ['2001:db8::', 32, 'documentation'],
  ['2002::', 16, '6to4'],
  ['fc00::', 7, 'unique-local'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'site-local'],
  ['ff00::', 8, 'multicast'],
];

export type AddressCheck = { ok: true } | { ok: false; range: string };

export class SsrfGuard {
  private readonly ranges: { list: BlockList; name: string; type: 'ipv4' | 'ipv6' }[] = [];
  /** every refused range of a family in one list: one check answers "is it refused at all?" */
  private readonly anyV4 = new BlockList();
  private readonly anyV6 = new BlockList();
  private readonly own = new Set<string>();
  private readonly globalAllow: BlockList;
  private readonly allowCache = new Map<string, BlockList>();

  constructor(opts: { allowPrivate: readonly string[]; ownAddresses?: readonly string[] }) {
    for (const [net, prefix, name] of V4) this.add(net, prefix, 'ipv4', name);
    for (const [net, prefix, name] of V6) this.add(net, prefix, 'ipv6', name);
    this.globalAllow = cidrList(opts.allowPrivate);
    const own = opts.ownAddresses ?? Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
    for (const a of own) this.own.add(a.toLowerCase());
  }

  // One list per range, checked only for its own family: BlockList maps IPv4 onto ::ffff:0:0/96
  // and ::/96, which would name the wrong range.
  private add(net: string, prefix: number, type: 'ipv4' | 'ipv6', name: string): void {
    const list = new BlockList();
    list.addSubnet(net, prefix, type);
    this.ranges.push({ list, name, type });
    (type === 'ipv4' ? this.anyV4 : this.anyV6).addSubnet(net, prefix, type);
  }

  /**
   * Answers per exemption list (the verdict's allowPrivate array, shared by every L1 hit of it)
   * and address. BlockList.check builds a SocketAddress per call and a refused address is looked
   * up in every range: 3.5% of the edge's CPU per connection before this cache.
   */
  private readonly answers = new WeakMap<readonly string[], Map<string, AddressCheck>>();

  /** Checks one resolved address against the guard, honouring the verdict's and the global exemptions. */
  check(address: string, ruleAllowPrivate: readonly string[]): AddressCheck {
    let cache = this.answers.get(ruleAllowPrivate);
    if (!cache) {
      cache = new Map();
      this.answers.set(ruleAllowPrivate, cache);
    }
    let answer = cache.get(address);
    if (!answer) {
      answer = this.checkUncached(address, ruleAllowPrivate);
      if (cache.size >= 4_096) cache.clear();
      cache.set(address, answer);
    }
    return answer;
  }

  private checkUncached(address: string, ruleAllowPrivate: readonly string[]): AddressCheck {
    const type = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    if (!type) return { ok: false, range: 'not-an-address' };
    // the common case, a public address, takes one check; only a refused one looks for its range's name
    const refused = (type === 'ipv4' ? this.anyV4 : this.anyV6).check(address, type);
    const hit = (refused ? this.ranges.find((r) => r.type === type && r.list.check(address, type))?.name : undefined) ?? (this.own.has(address.toLowerCase()) ? 'own-address' : undefined);
    if (!hit) return { ok: true };
    if (this.globalAllow.check(address, type)) return { ok: true };
    if (ruleAllowPrivate.length && this.ruleAllow(ruleAllowPrivate).check(address, type)) return { ok: true };
    return { ok: false, range: hit };
  }

  private ruleAllow(cidrs: readonly string[]): BlockList {
    const key = cidrs.join(',');
    let list = this.allowCache.get(key);
    if (!list) {
      list = cidrList(cidrs);
      if (this.allowCache.size > 1_000) this.allowCache.clear();
      this.allowCache.set(key, list);
    }
    return list;
  }
}

/** CIDRs (or bare addresses) into a BlockList; the policy engine validated them already. */
export function cidrList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [net = '', bits] = c.split('/');
    const type = isIPv4(net) ? 'ipv4' : 'ipv6';
    if (!isIPv4(net) && !isIPv6(net)) continue;
    const prefix = bits === undefined ? (type === 'ipv4' ? 32 : 128) : Number(bits);
    list.addSubnet(net, prefix, type);
  }
  return list;
}
