// The overflow spool: when the memory queue is full (the stream is unreachable for long), events
// are appended to a file under edge.spoolDir and replayed in order when the stream returns. The
// replay position is kept in a side file, so a restart resumes where it stopped.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';

export class Spool {
  private readonly file: string;
  private readonly offsetFile: string;
  /** lines accepted but not yet appended to the file */
  private pendingLines: string[] = [];
  private pendingBytes = 0;
  private writing: Promise<void> = Promise.resolve();
  private fileBytes = 0;
  private offset = 0;
  /** called with the number of events a failed write lost (disk full, I/O error) */
  onLost: (count: number, err: unknown) => void = () => undefined;

  constructor(
    dir: string,
    private readonly maxBytes: number,
  ) {
    mkdirSync(dir, { recursive: true });
    this.file = join(dir, 'flows.spool');
    this.offsetFile = join(dir, 'flows.spool.offset');
    this.fileBytes = existsSync(this.file) ? statSync(this.file).size : 0;
    this.offset = existsSync(this.offsetFile) ? Number(readFileSync(this.offsetFile, 'utf8')) || 0 : 0;
    if (this.offset > this.fileBytes) this.offset = 0;
  }

  /** Bytes accepted and not yet replayed. */
  get size(): number {
    return this.fileBytes - this.offset + this.pendingBytes;
  }

  get empty(): boolean {
    return this.size === 0;
  }

  /** Accepts a line unless the spool is full. Never blocks: the file write happens in the background. */
  append(line: string): boolean {
    const bytes = Buffer.byteLength(line) + 1;
    if (this.size + bytes > this.maxBytes) return false;
    this.pendingLines.push(line);
    this.pendingBytes += bytes;
    if (this.pendingLines.length === 1) this.writing = this.writing.then(() => this.writePending());
    return true;
  }

  private async writePending(): Promise<void> {
    // Let a burst accumulate into one write.
    await new Promise((r) => setImmediate(r));
    const lines = this.pendingLines;
    const bytes = this.pendingBytes;
    this.pendingLines = [];
    this.pendingBytes = 0;
    try {
      await appendFile(this.file, lines.join('\n') + '\n');
      this.fileBytes += bytes;
    } catch (err) {
      // Disk full or gone: these events are lost. Say so, and keep the chain usable for the next write.
      this.onLost(lines.length, err);
    }
  }

  /** The next lines to replay (in order) and the position after them; [] when nothing is on disk yet. */
  async peek(maxLines: number): Promise<{ lines: string[]; next: number }> {
    await this.writing;
    if (this.offset >= this.fileBytes) {
      // everything written was replayed: flush what is still pending in memory first
      if (this.pendingLines.length) {
        this.writing = this.writing.then(() => this.writePending());
        await this.writing;
      }
      if (this.offset >= this.fileBytes) return { lines: [], next: this.offset };
    }
    const len = Math.min(this.fileBytes - this.offset, 4 * 1024 * 1024);
    const buf = Buffer.alloc(len);
    const fd = openSync(this.file, 'r');
    try {
      readSync(fd, buf, 0, len, this.offset);
    } finally {
      closeSync(fd);
    }
    const lines: string[] = [];
    let pos = 0;
    while (lines.length < maxLines) {
      const nl = buf.indexOf(0x0a, pos);
      if (nl < 0) break;
      lines.push(buf.toString('utf8', pos, nl));
      pos = nl + 1;
    }
    return { lines, next: this.offset + pos };
  }

  /** Marks lines up to `next` as delivered; when all are, the files are removed. */
  commit(next: number): void {
    this.offset = next;
    if (this.offset >= this.fileBytes && this.pendingLines.length === 0) {
      for (const f of [this.file, this.offsetFile]) if (existsSync(f)) unlinkSync(f);
      this.offset = 0;
      this.fileBytes = 0;
    } else writeFileSync(this.offsetFile, String(this.offset));
  }
}
