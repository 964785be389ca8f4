import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '@portcullis/testing';
import { BatchedDestination, createLogger, isoTimestamp, lineWriter } from './logger';

/** a destination that keeps what it is given, line by line */
function capture(): { lines: string[]; destination: pino.DestinationStream } {
  const lines: string[] = [];
  return { lines, destination: { write: (s: string) => void lines.push(s) } };
}
/** the line with its time blanked: an ISO string (the platform loggers) or epoch milliseconds (pino's default) */
const untimed = (l: string | undefined): string => (l ?? '').replace(/"time":("[^"]*"|\d+)/, '"time":"T"');

describe('lineWriter', () => {
  it('writes what the logger itself writes for the same fields: level, time, bindings, message', () => {
    const { lines, destination } = capture();
    const log = createLogger({ service: 'edge-proxy', destination }).child({}, { redact: [] });
    const line = lineWriter(log, 'info', 'flow.end');
    log.info({ flowId: 'f1', sni: 'a"b\\c\u0001.test', bytesUp: 12 }, 'flow.end');
    line.write(`,"flowId":"f1","sni":${JSON.stringify('a"b\\c\u0001.test')},"bytesUp":12`);
    expect(lines).toHaveLength(2);
    expect(lines[1]?.endsWith('\n')).toBe(true);
    expect(untimed(lines[1])).toBe(untimed(lines[0]));
    expect(JSON.parse(lines[1] ?? '')).toMatchObject({ level: 30, service: 'edge-proxy', pid: process.pid, flowId: 'f1', bytesUp: 12, msg: 'flow.end' });
  });

  it('writes nothing below the logger\'s level, and follows a level changed at run time', () => {
    const { lines, destination } = capture();
    const log = createLogger({ service: 's', level: 'warn', destination });
    const line = lineWriter(log, 'info', 'flow.end');
    expect(line.enabled()).toBe(false);
    line.write(',"a":1');
    expect(lines).toEqual([]);
    log.level = 'info';
    expect(line.enabled()).toBe(true);
    line.write(',"a":1');
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ level: 30, a: 1, msg: 'flow.end' });
  });

  it('a logger with a mixin goes through pino and still gets the same line', () => {
    const { lines, destination } = capture();
    const log = pino({ base: { service: 's' }, mixin: () => ({ extra: 'x' }) }, destination);
    lineWriter(log, 'info', 'm').write(',"a":"b"');
    log.info({ a: 'b' }, 'm');
    expect(untimed(lines[0])).toBe(untimed(lines[1]));
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ extra: 'x', a: 'b', msg: 'm' });
  });
});

describe('the batched stdout destination', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-log-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps lines in order, holds a small batch until flushed, and writes a full one at once', async () => {
    const file = join(dir, 'batch.log');
    const out = pino.destination({ dest: file, sync: false, minLength: 0 });
    await new Promise((r) => out.once('ready', r));
    const dest = new BatchedDestination(out);
    const line = (i: number): string => `{"n":${i},"pad":"${'x'.repeat(200)}"}\n`;
    for (let i = 0; i < 10; i++) dest.write(line(i));
    await new Promise((r) => setTimeout(r, 50));
    expect(readFileSync(file, 'utf8')).toBe(''); // 2 KiB: waiting for more, or for the timer
    for (let i = 10; i < 60; i++) dest.write(line(i)); // past 8 KiB: handed on without a flush
    await waitFor(() => readFileSync(file, 'utf8').length > 8 * 1024, 2_000);
    dest.flushSync();
    expect(readFileSync(file, 'utf8')).toBe(Array.from({ length: 60 }, (_, i) => line(i)).join(''));
  });

  it('a process that dies of an uncaught exception still has its last lines on stdout', () => {
    const script = join(dir, 'dies.ts');
    writeFileSync(script, `import { createLogger } from ${JSON.stringify(join(__dirname, 'logger'))};\nconst log = createLogger({ service: 'dies' });\nlog.info({ n: 1 }, 'last words');\nsetTimeout(() => { throw new Error('boom'); }, 10);\n`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', env: { ...process.env, TSX_TSCONFIG_PATH: join(__dirname, '../../../tsconfig.base.json') }, timeout: 20_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('boom');
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ service: 'dies', n: 1, msg: 'last words' });
  });
});

describe('isoTimestamp', () => {
  it('is toISOString, for runs of nearby times and for any time at all', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 0, max: 4e12 }), fc.integer({ min: -8.6e15, max: 8.6e15 }), fc.double({ min: -1e13, max: 1e13, noNaN: true })), fc.array(fc.integer({ min: 0, max: 2_500 }), { maxLength: 20 }), (start, steps) => {
        let t = start;
        expect(isoTimestamp(t)).toBe(new Date(t).toISOString());
        for (const d of steps) {
          t += d;
          expect(isoTimestamp(t)).toBe(new Date(t).toISOString());
        }
      }),
      { numRuns: 3_000 },
    );
    expect(() => isoTimestamp(NaN)).toThrow(RangeError);
  });
});
