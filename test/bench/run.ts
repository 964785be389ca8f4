// `npm run bench`: runs every scenario in test/bench/scenarios (or those whose file name contains one
// of the words on the command line) and writes bench-results/<date>.{md,json}. Scenarios report
// ratios to a baseline measured in the same run, because these machines are shared and noisy.
// A failing scenario is reported and the others still run; child processes a scenario started are
// stopped after it, and killed if the bench is interrupted. Exit code 1 when a scenario failed.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { BenchScenario, BenchRow } from './types';
import { stopAll } from './support/procs';

function fmt(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '' : String(x);
}

function range(r: BenchRow): string {
  return r.min !== undefined && r.max !== undefined ? `${fmt(r.min)}–${fmt(r.max)}` : '';
}

function mark(r: BenchRow): string {
  return r.met === undefined ? '' : r.met ? 'met' : 'MISSED';
}

function gitRevision(): string {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() ? ' + uncommitted changes' : '';
    return `${rev}${dirty}`;
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<number> {
  const dir = join(__dirname, 'scenarios');
  const only = process.argv.slice(2);
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts') && (only.length === 0 || only.some((o) => f.includes(o))));
  if (files.length === 0) {
    console.error(`no scenario file name contains ${only.join(' or ')}; have: ${readdirSync(dir).join(', ')}`);
    return 2;
  }
  const results: { scenario: string; file: string; rows: BenchRow[]; notes: string[]; failed?: string; seconds: number }[] = [];
  for (const f of files.sort()) {
    const t0 = Date.now();
    let name = f;
    try {
      const mod = (await import(join(dir, f))) as { default: BenchScenario };
      name = mod.default.name;
      console.log(`# ${name}`);
      const out = await mod.default.run();
      for (const r of out.rows) {
        console.log(`  ${r.metric}: ${r.value} ${r.unit}${range(r) ? ` [${range(r)}]` : ''}${r.ratio !== undefined ? ` ratio ${r.ratio.toFixed(2)}` : ''}${r.target ? ` (target ${r.target}${r.met === undefined ? '' : r.met ? ': met' : ': MISSED'})` : ''}`);
      }
      for (const n of out.notes ?? []) console.log(`  note: ${n}`);
      results.push({ scenario: name, file: f, rows: out.rows, notes: out.notes ?? [], seconds: (Date.now() - t0) / 1000 });
    } catch (err) {
      if ((err as { skip?: boolean }).skip) {
        console.log(`  skipped: ${(err as Error).message}`);
        results.push({ scenario: name, file: f, rows: [], notes: [`skipped: ${(err as Error).message}`], seconds: (Date.now() - t0) / 1000 });
        continue;
      }
      const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
      console.error(`  FAILED: ${msg}`);
      results.push({ scenario: name, file: f, rows: [], notes: [], failed: msg.split('\n').slice(0, 12).join('\n'), seconds: (Date.now() - t0) / 1000 });
    } finally {
      await stopAll(); // whatever the scenario left running
    }
  }
  const date = new Date().toISOString();
  const header = { date, machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}`, node: process.version, git: gitRevision(), args: only };
  mkdirSync('bench-results', { recursive: true });
  const stamp = date.replace(/[:.]/g, '-');
  writeFileSync(join('bench-results', `${stamp}.json`), JSON.stringify({ ...header, results }, null, 2));
  const md = results
    .map((s) =>
      [
        `## ${s.scenario}`,
        '',
        ...(s.failed ? ['**FAILED**', '', '```', s.failed, '```', ''] : []),
        ...(s.rows.length
          ? ['| metric | value | unit | min–max | ratio | target | |', '|---|---|---|---|---|---|---|', ...s.rows.map((r) => `| ${r.metric} | ${fmt(r.value)} | ${r.unit} | ${range(r)} | ${r.ratio?.toFixed(2) ?? ''} | ${r.target ?? ''} | ${mark(r)} |`), '']
          : []),
        ...s.notes.map((n) => `- ${n}`),
        `- (${s.file}, ${s.seconds.toFixed(0)} s)`,
      ].join('\n'),
    )
    .join('\n\n');
  writeFileSync(join('bench-results', `${stamp}.md`), `# Portcullis bench ${date}\n\n${header.machine}, node ${header.node}, git ${header.git}\n\n${md}\n`);
  console.log(`written bench-results/${stamp}.md`);
  return results.some((r) => r.failed) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
