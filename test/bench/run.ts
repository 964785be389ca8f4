// `npm run bench`: runs every scenario in test/bench/scenarios (or those whose file name contains one
// of the words on the command line) and writes bench-results/<date>.{md,json}. Scenarios report
// ratios to a baseline measured in the same run, because these machines are shared and noisy.
// Each scenario runs in a Node process of its own (this file again, with --one), as it would alone:
// in one shared process the policy engine's decisions/s came out 2-4x lower after the scenarios
// before it had run their code in that process (V8's type feedback and heap left by them), a
// MISSED that a run of that scenario alone did not show.
// A failing scenario is reported and the others still run; child processes a scenario started are
// stopped after it, and killed if the bench is interrupted. Exit code 1 when a scenario failed.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
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

interface Result {
  scenario: string;
  file: string;
  rows: BenchRow[];
  notes: string[];
  failed?: string;
  seconds: number;
}

/** One scenario, in this process (started by main with --one): its result goes to the file `out`. */
async function runOne(f: string, out: string): Promise<number> {
  const t0 = Date.now();
  let name = f;
  let result: Result;
  try {
    const mod = (await import(join(__dirname, 'scenarios', f))) as { default: BenchScenario };
    name = mod.default.name;
    console.log(`# ${name}`);
    const res = await mod.default.run();
    for (const r of res.rows) {
      console.log(`  ${r.metric}: ${r.value} ${r.unit}${range(r) ? ` [${range(r)}]` : ''}${r.ratio !== undefined ? ` ratio ${r.ratio.toFixed(2)}` : ''}${r.target ? ` (target ${r.target}${r.met === undefined ? '' : r.met ? ': met' : ': MISSED'})` : ''}`);
    }
    for (const n of res.notes ?? []) console.log(`  note: ${n}`);
    result = { scenario: name, file: f, rows: res.rows, notes: res.notes ?? [], seconds: (Date.now() - t0) / 1000 };
  } catch (err) {
    if ((err as { skip?: boolean }).skip) {
      console.log(`  skipped: ${(err as Error).message}`);
      result = { scenario: name, file: f, rows: [], notes: [`skipped: ${(err as Error).message}`], seconds: (Date.now() - t0) / 1000 };
    } else {
      const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
      console.error(`  FAILED: ${msg}`);
      result = { scenario: name, file: f, rows: [], notes: [], failed: msg.split('\n').slice(0, 12).join('\n'), seconds: (Date.now() - t0) / 1000 };
    }
  } finally {
    await stopAll(); // whatever the scenario left running
  }
  writeFileSync(out, JSON.stringify(result));
  return 0;
}

async function main(): Promise<number> {
  if (process.argv[2] === '--one') return runOne(process.argv[3] as string, process.argv[4] as string);
  const dir = join(__dirname, 'scenarios');
  const only = process.argv.slice(2);
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts') && (only.length === 0 || only.some((o) => f.includes(o))));
  if (files.length === 0) {
    console.error(`no scenario file name contains ${only.join(' or ')}; have: ${readdirSync(dir).join(', ')}`);
    return 2;
  }
  const results: Result[] = [];
  let child: ChildProcess | undefined;
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      // The scenario's process stops its own children (support/procs.ts) and exits. Always a
      // SIGTERM: a Ctrl-C has already sent it SIGINT, and a second SIGINT could arrive after its
      // handler was taken down, killing it before its children are; its SIGTERM handler is
      // still there then, and stopping them twice is harmless.
      interrupted = true;
      child?.kill('SIGTERM');
    });
  }
  for (const f of files.sort()) {
    if (interrupted) break;
    const t0 = Date.now();
    const out = join(tmpdir(), `portcullis-bench-${process.pid}-${f}.json`);
    rmSync(out, { force: true });
    const code = await new Promise<number | null>((resolve) => {
      child = spawn(process.execPath, [...process.execArgv, __filename, '--one', f, out], { stdio: 'inherit' });
      child.once('error', () => resolve(null));
      child.once('exit', (c, sig) => resolve(sig ? 128 : c));
    });
    child = undefined;
    if (existsSync(out)) {
      results.push(JSON.parse(readFileSync(out, 'utf8')) as Result);
      rmSync(out, { force: true });
    } else {
      const failed = `${f}: its process exited (${code === null ? 'could not start' : `code ${code}`}) before it reported`;
      console.error(`  FAILED: ${failed}`);
      results.push({ scenario: f, file: f, rows: [], notes: [], failed, seconds: (Date.now() - t0) / 1000 });
    }
  }
  if (interrupted) return 130;
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
