// decide() against a reference evaluator written the plain way: a linear scan over the rules with
// string and BigInt matching, sharing nothing with the compiled matcher but normalizeName itself.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeName } from '@portcullis/sniff';
import { compileProfile, validateProfile, type Action, type DecisionInput, type Profile } from './index';

const LABELS = ['a', 'b', 'x', 'ax', 'xa', 'com', 'net', 'co', 'example', 'xn--bcher-kva'];
const REGEXES = ['^a\\..*$', '^[a-z]+\\.com$', 'x\\.(com|net)', '^.*\\.co$', '^(a|b)\\.x\\.[a-z]+$', '^([a-z-]+\\.)*example\\.net$'];
const CIDRS: Record<string, [bigint, number]> = {
  '10.0.0.0/8': [0xffff0a000000n, 104],
  '10.1.0.0/16': [0xffff0a010000n, 112],
  '2001:db8::/32': [0x20010db8n << 96n, 32],
  '192.0.2.1': [0xffffc0000201n, 128],
  '::ffff:10.2.0.0/112': [0xffff0a020000n, 112],
  '::/0': [0n, 0],
};
const SOURCES: Record<string, bigint | undefined> = {
  '10.1.2.3': 0xffff0a010203n,
  '10.2.3.4': 0xffff0a020304n,
  '::ffff:10.1.2.3': 0xffff0a010203n,
  '2001:db8::5': 0x20010db8000000000000000000000005n,
  '2001:db9::5': 0x20010db9000000000000000000000005n,
  '192.0.2.1': 0xffffc0000201n,
  '192.0.2.2': 0xffffc0000202n,
  junk: undefined,
};

// a few fixed, overlapping names make collisions (several rules per key, a name under several patterns) common
const COMMON = ['com', 'x.com', 'a.x.com', 'ax.com', 'b.a.x.com', 'x.net', 'example.net'];
const base = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...COMMON) },
  { weight: 1, arbitrary: fc.array(fc.constantFrom(...LABELS), { minLength: 1, maxLength: 3 }).map((ls) => ls.join('.')) },
);
const pattern = fc.tuple(fc.constantFrom('', '*.', '.'), base).map(([p, b]) => p + b);
const action = fc.constantFrom<Action>('allow', 'deny');
const rule = fc.record({
  action,
  fqdns: fc.array(pattern, { maxLength: 4 }),
  fqdnRegex: fc.subarray(REGEXES, { maxLength: 2 }),
  ports: fc.subarray([443, 80, 22], { maxLength: 2 }),
  sources: fc.subarray(Object.keys(CIDRS), { maxLength: 2 }),
});
const profileArb = fc.record({
  mode: fc.constantFrom('enforce', 'monitor'),
  defaultAction: action,
  noSni: action,
  ech: action,
  rules: fc.array(rule, { minLength: 0, maxLength: 12 }),
});

const name = fc.oneof(
  base,
  base.map((b) => `q.${b}`),
  base.map((b) => b.toUpperCase()),
  base.map((b) => `${b}.`),
  fc.constantFrom('a..x.com', 'bücher.de', 'x.com\u0000', '10.0.0.1', '-a.com', '', 'ads1.example.net', 'a-b.example.net'),
);
const input = fc.record(
  {
    name,
    port: fc.constantFrom(443, 80, 22, 8080),
    sourceIp: fc.constantFrom(...Object.keys(SOURCES)),
    ech: fc.boolean(),
    echGrease: fc.boolean(),
    noNameReason: fc.constantFrom('client-silent', 'not-tls'),
  },
  { requiredKeys: ['port'] },
);

interface Ref {
  verdict: Action;
  ruleId: string;
  reason: string;
  wouldDeny: boolean;
}

function reference(p: Profile, i: DecisionInput): Ref {
  const outcome = (a: Action, ruleId: string, reason: string): Ref =>
    p.mode === 'monitor' ? { verdict: 'allow', ruleId, reason, wouldDeny: a === 'deny' } : { verdict: a, ruleId, reason, wouldDeny: false };
  if (i.ech === true && i.echGrease !== true) return outcome(p.ech, '', 'ech');
  if (i.name === undefined || i.name === '') return outcome(p.noSni, '', i.noNameReason ?? 'no-sni');
  const n = normalizeName(i.name);
  if (!n.ok) return outcome(p.noSni, '', 'invalid-name');
  const host = n.name;
  const src = i.sourceIp === undefined ? undefined : SOURCES[i.sourceIp];
  for (const r of p.rules) {
    const byPattern = r.fqdns.some((f) =>
      f.startsWith('*.') ? host.endsWith(f.slice(1)) : f.startsWith('.') ? host === f.slice(1) || host.endsWith(f) : host === f,
    );
    const byRegex = r.fqdnRegex.some((re) => new RegExp(`^(?:${re})$`, 'i').test(host));
    const nameOk = (r.fqdns.length === 0 && r.fqdnRegex.length === 0) || byPattern || byRegex;
    const portOk = r.ports.length === 0 || r.ports.includes(i.port);
    const srcOk =
      r.sources.length === 0 ||
      (src !== undefined &&
        r.sources.some((c) => {
          const [net, len] = CIDRS[c === '10.2.0.0/16' ? '::ffff:10.2.0.0/112' : c === '192.0.2.1/32' ? '192.0.2.1' : c] ?? [0n, 999];
          const shift = BigInt(128 - len);
          return len <= 128 && src >> shift === net >> shift;
        }));
    if (nameOk && portOk && srcOk) return outcome(r.action, r.id, 'rule');
  }
  return outcome(p.defaultAction, '', 'default');
}

type Generated<A> = A extends fc.Arbitrary<infer T> ? T : never;

function build(raw: Generated<typeof profileArb>): Profile | undefined {
  const r = validateProfile({
    apiVersion: 'portcullis/v1',
    kind: 'FqdnFilterProfile',
    name: 'prop',
    ...raw,
    rules: raw.rules.map((r, k) => ({ id: `r${k}`, ...r, ports: r.fqdns.length + r.fqdnRegex.length + r.ports.length + r.sources.length === 0 ? [443] : r.ports, allowPublicSuffixWildcard: true })),
  });
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.profile;
}

describe('decide equals a naive reference evaluator', () => {
  it('on random profiles and inputs', () => {
    fc.assert(
      fc.property(profileArb, fc.array(input, { minLength: 1, maxLength: 20 }), (raw, inputs) => {
        const profile = build(raw);
        if (!profile) return;
        const policy = compileProfile(profile);
        for (const i of inputs) {
          const d = policy.decide(i);
          expect({ verdict: d.verdict, ruleId: d.ruleId, reason: d.reason, wouldDeny: d.wouldDeny }, JSON.stringify(i)).toEqual(reference(profile, i));
          // explain is a second, slower implementation: it must agree on the deciding rule
          if (d.reason === 'rule' || d.reason === 'default') {
            expect(policy.explain(i).rules.find((t) => t.matched)?.ruleId ?? '').toBe(d.ruleId);
          }
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('a validated profile round-trips through JSON unchanged', () => {
    fc.assert(
      fc.property(profileArb, (raw) => {
        const profile = build(raw);
        expect(validateProfile(JSON.parse(JSON.stringify(profile)))).toMatchObject({ ok: true, profile });
      }),
      { numRuns: 200 },
    );
  });
});
