// Summarises a V8 .cpuprofile (node --cpu-prof): where the process's CPU time went, by function
// (self and inclusive) and by origin (our bundle, node internals, each npm package, GC), with
// bundle positions mapped back to the TypeScript sources through the bundle's source map.
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import type { SourceMapPayload } from 'node:module';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  busyMs: number;
  self: { fn: string; ms: number; pct: number }[];
  inclusive: { fn: string; ms: number; pct: number }[];
  origins: { origin: string; ms: number; pct: number }[];
  /** each sample credited to the innermost frame that names a pipeline stage */
  stages: { stage: string; ms: number; pct: number }[];
}

/** Pipeline stages, matched against frame labels (function + source position) from the leaf up. */
const STAGES: [string, RegExp][] = [
  ['logging (pino/sonic-boom)', /node_modules\/(pino|sonic-boom|@pinojs|thread-stream|fast-redact)\//],
  ['flow events (publisher + ioredis XADD)', /libs\/flow-events\/|node_modules\/(ioredis|@ioredis|redis-parser|denque|cluster-key-slot|standard-as-callback)\//],
  ['decide (DecisionClient, L1)', /libs\/edge\/src\/decide\.ts|node_modules\/(@grpc|protobufjs|lru-cache)\//],
  ['SSRF guard (BlockList)', /libs\/edge\/src\/ssrf\.ts/],
  ['connect upstream (resolve, Happy Eyeballs, connect())', /libs\/edge\/src\/connect\.ts|^(internalConnect|afterConnect|lookupAndConnect) /],
  ['sniff (ClientHello parse)', /libs\/sniff\//],
  ['relay (both ways)', /^(ondata|pipeOnDrain|pipe) node:internal\/streams|^(on(Client|Upstream)(Data|Drain|End|Close|Error)|relay|start|onIdle|closed) .*libs\/edge\/src\/flow\.ts|libs\/edge\/src\/idle\.ts/],
  ['flow handler (flow.ts, events, ids)', /libs\/edge\/src\/flow\.ts|^randomUUID /],
  ['accept (onconnection, admission)', /^onconnection |libs\/edge\/src\/proxy\.ts/],
  ['garbage collector', /^\(garbage collector\)/],
  ['start-up (module loading)', /^(wrapSafe|Module\._compile|compileFunction) /],
];

const maps = new Map<string, SourceMap | undefined>();
/** The bundle may be rebuilt while the bench runs: the rig keeps a copy of the map the process started with. */
let mapOverride: string | undefined;

function sourceMapFor(url: string): SourceMap | undefined {
  const key = `${mapOverride ?? ''}|${url}`;
  if (maps.has(key)) return maps.get(key);
  let sm: SourceMap | undefined;
  try {
    const file = url.startsWith('file://') ? fileURLToPath(url) : url;
    const mapFile = mapOverride && file.endsWith('edge-proxy/main.js') ? mapOverride : `${file}.map`;
    if (existsSync(mapFile)) sm = new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8')) as SourceMapPayload);
  } catch {
    sm = undefined;
  }
  maps.set(key, sm);
  return sm;
}

function label(cf: CallFrame, root: string): { fn: string; origin: string } {
  const name = cf.functionName || '(anonymous)';
  if (!cf.url) return { fn: name, origin: name.startsWith('(') ? name : 'native' };
  let where = cf.url;
  let origin = 'other';
  if (where.startsWith('node:')) origin = 'node internals';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(where);
  if (nm) origin = `npm ${nm[1]}`;
  const sm = sourceMapFor(cf.url);
  if (sm) {
    const e = sm.findEntry(cf.lineNumber, cf.columnNumber) as { originalSource?: string; originalLine?: number };
    if (e.originalSource) {
      const src = e.originalSource.startsWith('file://') ? fileURLToPath(e.originalSource) : e.originalSource;
      const rel = relative(root, src.replace(/^.*?(libs\/|apps\/|node_modules\/)/, (m, p: string) => `${root}/${p}`));
      where = `${rel}:${(e.originalLine ?? 0) + 1}`;
      const lib = /^(libs\/[^/]+|apps\/[^/]+)/.exec(rel);
      origin = lib ? (lib[1] as string) : /node_modules\/((?:@[^/]+\/)?[^/]+)/.test(rel) ? `npm ${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(rel)?.[1]}` : origin;
      return { fn: `${name} ${where}`, origin };
    }
  }
  if (where.startsWith('file://')) where = relative(root, fileURLToPath(where));
  return { fn: `${name} ${where}:${cf.lineNumber + 1}`, origin };
}

export function summarizeProfile(path: string, root: string, top = 20): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile → edge-<pid>.js.map beside it (see rig.ts)
  const pid = /CPU\.\d+\.\d+\.(\d+)\./.exec(basename(path))?.[1];
  const snapshot = pid ? join(dirname(path), `edge-${pid}.js.map`) : undefined;
  mapOverride = snapshot && existsSync(snapshot) ? snapshot : undefined;
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const labels = new Map<number, { fn: string; origin: string }>();
  for (const n of p.nodes) labels.set(n.id, label(n.callFrame, root));
  const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);
  let idleUs = 0;
  const self = new Map<string, number>();
  const origins = new Map<string, number>();
  const incl = new Map<string, number>();
  const stages = new Map<string, number>();
  const stageOf = (leaf: number): string => {
    for (let cur: number | undefined = leaf; cur !== undefined; cur = parent.get(cur)) {
      const fn = labels.get(cur)?.fn ?? '';
      for (const [name, re] of STAGES) if (re.test(fn)) return name;
    }
    return 'other (node net/streams/timers: socket setup, close, reads)';
  };
  for (const [id, us] of selfUs) {
    const l = labels.get(id) as { fn: string; origin: string };
    if (l.fn.startsWith('(idle)')) {
      idleUs += us;
      continue;
    }
    self.set(l.fn, (self.get(l.fn) ?? 0) + us);
    origins.set(l.origin, (origins.get(l.origin) ?? 0) + us);
    const st = stageOf(id);
    stages.set(st, (stages.get(st) ?? 0) + us);
    // inclusive: credit every distinct function on the stack once
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const fn = labels.get(cur)?.fn ?? '';
      if (seen.has(fn)) continue;
      seen.add(fn);
      incl.set(fn, (incl.get(fn) ?? 0) + us);
    }
  }
  const busyUs = totalUs - idleUs;
  const list = <K extends string>(m: Map<string, number>, key: K, n: number): ({ ms: number; pct: number } & Record<K, string>)[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => ({ [key]: k, ms: Math.round(us / 1000), pct: Math.round((us / Math.max(1, busyUs)) * 1000) / 10 }) as { ms: number; pct: number } & Record<K, string>);
  const inclusive = list(incl, 'fn', top * 3).filter((x) => !/^\((root|program)\)/.test(x.fn)).slice(0, top);
  return { totalMs: Math.round(totalUs / 1000), busyMs: Math.round(busyUs / 1000), self: list(self, 'fn', top), inclusive, origins: list(origins, 'origin', 15), stages: list(stages, 'stage', 20) };
}

export function formatProfile(s: ProfileSummary, title: string): string[] {
  return [
    `${title}: ${s.busyMs} ms busy of ${s.totalMs} ms profiled`,
    `  by stage: ${s.stages.map((o) => `${o.stage} ${o.pct}%`).join(', ')}`,
    `  by origin: ${s.origins.map((o) => `${o.origin} ${o.pct}%`).join(', ')}`,
    `  top self time: ${s.self.map((f) => `${f.fn} ${f.pct}%`).join('; ')}`,
    `  top inclusive: ${s.inclusive.map((f) => `${f.fn} ${f.pct}%`).join('; ')}`,
  ];
}

/** Notes summarising each CPU profile an edge process wrote (BENCH_PROFILE=1). */
export function profileNotes(files: string[], root: string): string[] {
  const out: string[] = [];
  for (const f of files) {
    try {
      out.push(...formatProfile(summarizeProfile(f, root), `edge CPU profile ${f}`));
    } catch (err) {
      out.push(`edge CPU profile ${f}: unreadable (${(err as Error).message})`);
    }
  }
  return out;
}
