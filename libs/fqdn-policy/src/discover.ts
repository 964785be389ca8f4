// Discovery: turn the names a fleet was seen reaching (monitor mode) into a suggested profile.
// Names are grouped under their registrable domain; a domain with many distinct subdomains
// becomes one wildcard, the rest stay exact. The result validates with parseProfileText.
import { stringify } from 'yaml';
import { normalizeName } from '@portcullis/sniff';
import { isPublicSuffix } from './public-suffix';

export interface Observation {
  name: string;
  port: number;
}

export interface DiscoverOptions {
  /** distinct subdomains of one registrable domain before they become a wildcard */
  wildcardThreshold: number;
  profileName: string;
}

/** The registrable domain: the public suffix plus one label (api.github.com → github.com). */
export function registrableDomain(name: string): string {
  const labels = name.split('.');
  for (let i = labels.length - 2; i >= 0; i--) {
    const suffix = labels.slice(i + 1).join('.');
    const candidate = labels.slice(i).join('.');
    if (isPublicSuffix(suffix) && !isPublicSuffix(candidate)) return candidate;
  }
  return name;
}

export interface DiscoveredRule {
  id: string;
  action: 'allow';
  fqdns: string[];
  ports: number[];
}

export function discoverRules(observations: Iterable<Observation>, opts: Partial<DiscoverOptions> = {}): DiscoveredRule[] {
  const threshold = opts.wildcardThreshold ?? 3;
  const byDomain = new Map<string, { names: Set<string>; ports: Set<number> }>();
  for (const o of observations) {
    const n = normalizeName(o.name);
    if (!n.ok) continue;
    const domain = registrableDomain(n.name);
    const entry = byDomain.get(domain) ?? { names: new Set(), ports: new Set() };
    entry.names.add(n.name);
    if (o.port > 0) entry.ports.add(o.port);
    byDomain.set(domain, entry);
  }
  const rules: DiscoveredRule[] = [];
  for (const [domain, { names, ports }] of [...byDomain].sort(([a], [b]) => a.localeCompare(b))) {
    const subs = [...names].filter((n) => n !== domain);
    let fqdns: string[];
    if (subs.length >= threshold && !isPublicSuffix(domain)) {
      // many subdomains: one wildcard; ".x" also covers the apex when it was seen
      fqdns = [names.has(domain) ? `.${domain}` : `*.${domain}`];
    } else fqdns = [...names].sort();
    rules.push({ id: domain.replace(/[^a-z0-9-]/g, '-'), action: 'allow', fqdns, ports: [...ports].sort((a, b) => a - b) });
  }
  return rules;
}

/** A complete profile text in monitor mode, ready to review, then switch to enforce. */
export function discoverProfile(observations: Iterable<Observation>, opts: Partial<DiscoverOptions> = {}): string {
  const rules = discoverRules(observations, opts).map((r) => (r.ports.length ? r : { id: r.id, action: r.action, fqdns: r.fqdns }));
  const doc = { apiVersion: 'portcullis/v1', kind: 'FqdnFilterProfile', name: opts.profileName ?? 'discovered', mode: 'monitor', defaultAction: 'deny', noSni: 'deny', ech: 'deny', rules };
  return `# Suggested by \`portcullis audit discover\` from the names seen. Review, then set mode: enforce.\n${stringify(doc)}`;
}
