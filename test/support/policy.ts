// A policy service's setup shared by the specs that start one in-process on a test Redis.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@portcullis/platform';

/** github.com and its subdomains allowed on ports 443 and 22, everything else denied; `extra`: more rules. */
export const githubProfile = (extra = ''): string => `apiVersion: portcullis/v1
kind: FqdnFilterProfile
name: it
defaultAction: deny
noSni: deny
ech: deny
rules:
  - id: github
    action: allow
    fqdns: ["github.com", "*.github.com"]
    ports: [443, 22]
${extra}`;

/** A policy-service config on a free port that loads `profile` (written to a temp file). */
export function policyConfig(redisUrl: string, profile: string, adminToken: string): ReturnType<typeof parseConfig> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-it-'));
  writeFileSync(join(dir, 'p.yaml'), profile);
  return parseConfig({ redis: { url: redisUrl }, policy: { listen: '127.0.0.1:0', profile: join(dir, 'p.yaml'), adminToken } });
}
