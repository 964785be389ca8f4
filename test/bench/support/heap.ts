// Heap composition per idle flow: two V8 heap snapshots of the edge (node
// --heapsnapshot-signal=SIGUSR2), before and after opening the flows, aggregated by object type
// and constructor/closure name; the difference divided by the number of flows.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './procs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Sends SIGUSR2 and waits until the new .heapsnapshot in `dir` is complete; returns its path. */
export async function takeHeapSnapshot(dir: string, pid: number, timeoutMs = 120_000): Promise<string> {
  const before = new Set(readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot')));
  process.kill(pid, 'SIGUSR2');
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    await sleep(1_000);
    const f = readdirSync(dir).find((n) => n.endsWith('.heapsnapshot') && !before.has(n));
    if (!f) continue;
    try {
      JSON.parse(readFileSync(join(dir, f), 'utf8')); // complete once it parses
      return join(dir, f);
    } catch {
      // still being written
    }
  }
  throw new Error(`no complete heap snapshot from ${pid} within ${timeoutMs} ms`);
}

function aggregate(path: string): Map<string, { n: number; size: number }> {
  const snap = JSON.parse(readFileSync(path, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const out = new Map<string, { n: number; size: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType] as number] ?? '?';
    let name = snap.strings[snap.nodes[i + iName] as number] ?? '';
    if (/string|number/.test(type)) name = '';
    name = name.slice(0, 40);
    const key = `${type} ${name}`.trim();
    const e = out.get(key) ?? { n: 0, size: 0 };
    e.n++;
    e.size += snap.nodes[i + iSize] as number;
    out.set(key, e);
  }
  return out;
}

/** Notes: V8 heap bytes per flow in total and the top contributors (bytes and objects per flow). */
export function heapDeltaNotes(before: string, after: string, flows: number, top = 15): string[] {
  const a = aggregate(before);
  const b = aggregate(after);
  let total = 0;
  const d: { key: string; n: number; size: number }[] = [];
  for (const [key, v] of b) {
    const o = a.get(key) ?? { n: 0, size: 0 };
    total += v.size - o.size;
    d.push({ key, n: v.n - o.n, size: v.size - o.size });
  }
  d.sort((x, y) => y.size - x.size);
  rmSync(before, { force: true });
  rmSync(after, { force: true });
  return [
    `edge V8 heap per idle flow (heap snapshots before/after, self sizes): ${Math.round(total / flows)} B; top: ${d
      .slice(0, top)
      .map((x) => `${x.key} ${Math.round(x.size / flows)} B (${(x.n / flows).toFixed(1)} objects)`)
      .join('; ')}`,
  ];
}
