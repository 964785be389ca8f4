import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger, lineWriter } from './logger';

/** a destination that keeps what it is given, line by line */
function capture(): { lines: string[]; destination: pino.DestinationStream } {
  const lines: string[] = [];
  return { lines, destination: { write: (s: string) => void lines.push(s) } };
}
const untimed = (l: string | undefined): string => (l ?? '').replace(/"time":"[^"]*"/, '"time":"T"');

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
