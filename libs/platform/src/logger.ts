// pino logger: JSON on stdout, object first, message second; secrets redacted.
import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

/** about this many characters of log lines go to stdout in one write */
const LOG_BATCH = 8 * 1024;
/** and lines wait at most this long (what `tail -f` on the log lags by) */
export const LOG_FLUSH_MS = 200;

/**
 * Log lines gathered in an array and handed to sonic-boom joined, about 8 KiB at a time (two
 * lines per flow, one write syscall each, were a fifth of the edge's CPU per connection).
 * sonic-boom's own batching (minLength) appends each line to one growing string and measures its
 * UTF-8 length on every write: 4.2 µs per 300-byte line against 1.7 µs here (same file, same
 * batch size, a micro-benchmark). Writes stay asynchronous: a slow reader of stdout never blocks
 * the event loop.
 */
export class BatchedDestination implements pino.DestinationStream {
  private parts: string[] = [];
  private length = 0;

  constructor(private readonly out: ReturnType<typeof pino.destination>) {}

  write(line: string): boolean {
    this.parts.push(line);
    this.length += line.length;
    if (this.length >= LOG_BATCH) this.hand();
    return true;
  }

  private hand(): void {
    if (this.length === 0) return;
    const chunk = this.parts.join('');
    this.parts = [];
    this.length = 0;
    this.out.write(chunk);
  }

  /** hands what is gathered to sonic-boom, which writes it now (asynchronously) */
  flush(cb?: (err?: Error) => void): void {
    this.hand();
    this.out.flush(cb);
  }

  /** writes everything synchronously: at exit */
  flushSync(): void {
    this.hand();
    this.out.flushSync();
  }
}

/** Batched stdout, flushed every LOG_FLUSH_MS and at exit (a fatal error's exit too). */
function batchedStdout(): pino.DestinationStream {
  const dest = new BatchedDestination(pino.destination({ sync: false, minLength: 0 }));
  setInterval(() => dest.flush(), LOG_FLUSH_MS).unref();
  process.once('exit', () => {
    try {
      dest.flushSync();
    } catch {
      // nothing left to flush, or stdout is gone
    }
  });
  return dest;
}

let isoSecond = NaN;
let isoPrefix = '';

/**
 * `new Date(ms).toISOString()`, for the per-flow timestamps (flow.start's startTime, the log
 * line's time): the text up to the second is kept from the last call, only the milliseconds are
 * formatted. toISOString was most of flow.start's own time in a CPU profile.
 */
export function isoTimestamp(ms: number): string {
  // whole milliseconds since 1970 (Date.now()); anything else the slow way
  if (!Number.isSafeInteger(ms) || ms < 0) return new Date(ms).toISOString();
  const m = ms % 1000;
  const second = (ms - m) / 1000;
  if (second !== isoSecond) {
    const full = new Date(ms).toISOString();
    if (full.length !== 24) return full; // past year 9999: not the form cut here
    isoSecond = second;
    isoPrefix = full.slice(0, 20);
    return full;
  }
  return `${isoPrefix}${m < 10 ? '00' : m < 100 ? '0' : ''}${m}Z`;
}

export function createLogger(opts: { level?: string; service: string; destination?: pino.DestinationStream }): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      // '' (the all-in-one process): each service's child logger names itself
      base: opts.service ? { service: opts.service, pid: process.pid } : { pid: process.pid },
      redact: { paths: ['adminToken', 'token', 'password', 'authorization', '*.adminToken', '*.password', 'redis.url'], censor: '[redacted]' },
      // pino.stdTimeFunctions.isoTime's text, without a toISOString per line
      timestamp: () => `,"time":"${isoTimestamp(Date.now())}"`,
    },
    opts.destination ?? batchedStdout(),
  );
}

export interface LineWriter {
  /** whether the logger writes at this level now (levels can change at run time) */
  enabled(): boolean;
  /** `fields`: `,"key":value` pairs, already JSON, in the order they should appear */
  write(fields: string): void;
}

type PinoInternals = Record<symbol, unknown>;
const S = pino.symbols;

/**
 * Lines of one fixed shape written through a logger's own destination, byte for byte what
 * `log[level](fields, msg)` writes (its level, time, bindings and message keys), for a caller
 * that encodes its own fields: the canonical flow line. pino's generic encoder (an own-property,
 * serializer and stringifier lookup per key, a type switch per value) was most of that line's
 * cost. A logger with a mixin, a log formatter, a stream-write hook, a message prefix, a nested key
 * or a multistream destination takes pino's own path.
 */
export function lineWriter(log: Logger, level: pino.Level, msg: string): LineWriter {
  const p = log as unknown as PinoInternals;
  const num = pino.levels.values[level] as number;
  const formatters = p[S.formattersSym] as { log?: unknown } | undefined;
  const hooks = p[S.hooksSym] as { streamWrite?: unknown } | undefined;
  const stream = p[S.streamSym] as Record<symbol, unknown>;
  const generic = Boolean(p[S.mixinSym] || formatters?.log || hooks?.streamWrite || p[(S as unknown as Record<string, symbol>)['msgPrefixSym'] as symbol] || p[S.nestedKeySym] || stream[S.needsMetadataGsym]);
  const msgPart = `,${JSON.stringify(p[S.messageKeySym] as string)}:${JSON.stringify(msg)}`;
  return {
    enabled: () => log.isLevelEnabled(level),
    write: (fields: string): void => {
      if (!log.isLevelEnabled(level)) return;
      if (generic) {
        log[level](JSON.parse(`{${fields.slice(1)}}`) as object, msg);
        return;
      }
      const line = (p[S.lsCacheSym] as Record<number, string>)[num] + (p[S.timeSym] as () => string)() + (p[S.chindingsSym] as string) + fields + msgPart + (p[S.endSym] as string);
      (p[S.streamSym] as { write(s: string): unknown }).write(line);
    },
  };
}
