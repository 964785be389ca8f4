// Where audit records land. The NDJSON file sink appends and fsyncs a whole batch before the
// consumer acknowledges it, so an acknowledged event is on disk.
import { mkdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface AuditSink {
  /** Durably writes the lines (each one JSON document, no newline). */
  write(lines: string[]): Promise<void>;
  close(): Promise<void>;
}

export class NdjsonFileSink implements AuditSink {
  private handle: Promise<FileHandle>;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.handle = open(path, 'a');
  }

  async write(lines: string[]): Promise<void> {
    if (lines.length === 0) return;
    const fh = await this.handle;
    await fh.appendFile(lines.join('\n') + '\n');
    await fh.datasync();
  }

  async close(): Promise<void> {
    await (await this.handle).close();
  }
}
