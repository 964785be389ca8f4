// pino logger: JSON on stdout, object first, message second; secrets redacted.
import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

export function createLogger(opts: { level?: string; service: string; destination?: pino.DestinationStream }): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      // '' (the all-in-one process): each service's child logger names itself
      base: opts.service ? { service: opts.service, pid: process.pid } : { pid: process.pid },
      redact: { paths: ['adminToken', 'token', 'password', 'authorization', '*.adminToken', '*.password', 'redis.url'], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? pino.destination({ sync: false }),
  );
}
