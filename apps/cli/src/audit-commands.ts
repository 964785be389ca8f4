// `portcullis audit …`: follow the live stream, read the operators' aggregates, and suggest a
// profile from the names the audit log has seen.
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DIMENSIONS, RedisAggregates } from '@portcullis/audit';
import { decodeFlowEvent, FLOW_STREAM } from '@portcullis/flow-events';
import type { FlowEvent } from '@portcullis/flow-events';
import { discoverProfile } from '@portcullis/fqdn-policy';
import type { Observation } from '@portcullis/fqdn-policy';
import { connectRedis, loadConfigFile, redisConfigured } from '@portcullis/platform';
import type { PortcullisConfig, RedisConfig } from '@portcullis/platform';
import { opt, UsageError } from './args';
import type { Args } from './args';

/** 30s, 15m, 1h, 7d → milliseconds */
export function parseDuration(text: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(text);
  if (!m) throw new UsageError(`"${text}" is not a duration like 15m, 1h or 7d`);
  return Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/** `*.github.com` style glob, or a plain substring. */
function matcher(pattern: string | undefined): (name: string) => boolean {
  if (!pattern) return () => true;
  if (!pattern.includes('*')) return (n) => n.includes(pattern.toLowerCase());
  const re = new RegExp(`^${pattern.toLowerCase().split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return (n) => re.test(n);
}

function configOf(args: Args): Readonly<PortcullisConfig> {
  const path = opt(args, 'config');
  if (!path) throw new UsageError('audit commands need --config FILE');
  return loadConfigFile(path);
}

function redisOf(args: Args, config: Readonly<PortcullisConfig>): RedisConfig {
  const url = opt(args, 'redis');
  if (url) return { ...config.redis, url, sentinels: undefined, cluster: undefined };
  if (!redisConfigured(config)) throw new UsageError('this command reads Redis: set redis in the config (the embedded stack keeps its stream in its own process)');
  return config.redis;
}

export function formatEvent(e: FlowEvent): string {
  const name = e.connectHost || e.sni || '-';
  const base = `${e.startTime} ${e.event.padEnd(10)} ${e.verdict.padEnd(5)} ${name} reason=${e.reason}${e.ruleId ? ` rule=${e.ruleId}` : ''} src=${e.src} dst=${e.dst || '-'} node=${e.nodeId}`;
  return e.event === 'flow.end' ? `${base} up=${e.bytesUp} down=${e.bytesDown} ms=${Math.round(e.durationMs)} close=${e.closeReason}` : base;
}

async function tail(args: Args): Promise<number> {
  const config = configOf(args);
  const redis = connectRedis(redisOf(args, config), { maxRetriesPerRequest: null });
  const verdict = opt(args, 'verdict');
  const match = matcher(opt(args, 'sni'));
  const max = Number(opt(args, 'count') ?? Infinity);
  let shown = 0;
  let last = '$';
  process.once('SIGINT', () => {
    redis.disconnect();
    process.exit(0);
  });
  try {
    while (shown < max) {
      const reply = (await redis.xread('COUNT', 100, 'BLOCK', 1_000, 'STREAMS', FLOW_STREAM, last)) as [string, [string, string[]][]][] | null;
      for (const [id, fields] of reply?.[0]?.[1] ?? []) {
        last = id;
        const r = decodeFlowEvent(fields[fields.indexOf('data') + 1] ?? '');
        if (!r.ok) continue;
        if (verdict && r.event.verdict !== verdict) continue;
        if (!match(r.event.connectHost || r.event.sni)) continue;
        console.log(formatEvent(r.event));
        if (++shown >= max) break;
      }
    }
  } finally {
    redis.disconnect();
  }
  return 0;
}

async function top(args: Args): Promise<number> {
  const config = configOf(args);
  const redis = connectRedis(redisOf(args, config));
  try {
    const windowText = opt(args, 'window') ?? '1h';
    const result = await new RedisAggregates(redis, config.redis.keyPrefix).top(parseDuration(windowText), Number(opt(args, 'limit') ?? 10));
    for (const d of DIMENSIONS) {
      console.log(`\ntop ${d} (last ${windowText})`);
      const rows = [['ATTEMPTS', 'DENIALS', d.toUpperCase()], ...result[d].map((e) => [String(e.attempts), String(e.denials), e.key])];
      for (const r of rows) console.log(`  ${r[0]?.padStart(8)}  ${r[1]?.padStart(7)}  ${r[2]}`);
    }
  } finally {
    redis.disconnect();
  }
  return 0;
}

/** Every flow.start in the audit log and its rotated files since `since`. */
export function readObservations(logPath: string, sinceMs: number): Observation[] {
  const dir = dirname(logPath);
  const base = basename(logPath);
  const files = readdirSync(dir).filter((f) => (f === base || f.startsWith(`${base}.`)) && !f.endsWith('.rejects'));
  const from = Date.now() - sinceMs;
  const out: Observation[] = [];
  for (const f of files) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (!line) continue;
      const r = decodeFlowEvent(line);
      if (!r.ok || r.event.event !== 'flow.start' || Date.parse(r.event.startTime) < from) continue;
      const name = r.event.connectHost || r.event.sni;
      if (!name) continue;
      const port = Number(/:(\d+)$/.exec(r.event.dst)?.[1] ?? 0);
      out.push({ name, port });
    }
  }
  return out;
}

function discover(args: Args): number {
  const config = configOf(args);
  const observations = readObservations(opt(args, 'log') ?? config.audit.log, parseDuration(opt(args, 'since') ?? '24h'));
  if (observations.length === 0) {
    console.error('no named flows in the audit log for that period');
    return 1;
  }
  process.stdout.write(discoverProfile(observations, { profileName: opt(args, 'name') ?? 'discovered' }));
  return 0;
}

export async function auditCommand(args: Args): Promise<number> {
  const sub = args.positionals[1];
  if (sub === 'tail') return tail(args);
  if (sub === 'top') return top(args);
  if (sub === 'discover') return discover(args);
  throw new UsageError(`unknown audit command "${sub ?? ''}"`);
}
