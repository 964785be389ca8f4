// `npm run bench`: runs every scenario in test/bench/scenarios (or those named on the command line)
// and writes bench-results/<date>.{md,json}. Scenarios report ratios to a baseline measured in the
// same run, because these machines are shared and noisy.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchScenario, BenchRow } from './types';

async function main(): Promise<void> {
  const dir = join(__dirname, 'scenarios');
  const only = process.argv.slice(2);
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts') && (only.length === 0 || only.some((o) => f.includes(o))));
  const results: { scenario: string; rows: BenchRow[]; notes: string[] }[] = [];
  for (const f of files.sort()) {
    const mod = (await import(join(dir, f))) as { default: BenchScenario };
    console.log(`# ${mod.default.name}`);
    const out = await mod.default.run();
    for (const r of out.rows) console.log(`  ${r.metric}: ${r.value} ${r.unit}${r.target ? ` (target ${r.target})` : ''}${r.ratio !== undefined ? ` ratio ${r.ratio.toFixed(2)}` : ''}`);
    for (const n of out.notes ?? []) console.log(`  note: ${n}`);
    results.push({ scenario: mod.default.name, rows: out.rows, notes: out.notes ?? [] });
  }
  mkdirSync('bench-results', { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(join('bench-results', `${stamp}.json`), JSON.stringify({ date: new Date().toISOString(), results }, null, 2));
  const md = results
    .map((s) => [`## ${s.scenario}`, '', '| metric | value | unit | ratio | target |', '|---|---|---|---|---|', ...s.rows.map((r) => `| ${r.metric} | ${r.value} | ${r.unit} | ${r.ratio?.toFixed(2) ?? ''} | ${r.target ?? ''} |`), '', ...s.notes.map((n) => `- ${n}`)].join('\n'))
    .join('\n\n');
  writeFileSync(join('bench-results', `${stamp}.md`), `# Portcullis bench ${new Date().toISOString()}\n\n${md}\n`);
  console.log(`written bench-results/${stamp}.md`);
}

void main();
