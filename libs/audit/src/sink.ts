// Where audit records land. The NDJSON file sink appends and fsyncs a whole batch before the
// consumer acknowledges it, so an acknowledged event is on disk. Several audit instances may
// share one file (same volume): appends are O_APPEND, and rotation is detected by inode.
import { mkdirSync, readdirSync } from 'node:fs';
import { open, rename, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AuditSink {
  /** Durably writes the lines (each one JSON document, no newline). */
  write(lines: string[]): Promise<void>;
  /**
   * Which of these needles (substrings of a line) the sink already holds; used only for
   * entries that may have been written before (redeliveries), so it may be slow.
   */
  has(needles: string[]): Promise<Set<string>>;
  close(): Promise<void>;
}

export interface FileSinkOptions {
  /** rotate when the file grows past this many bytes */
  maxBytes: number;
  /** rotate when the UTC day changes */
  daily: boolean;
  /** how many bytes from the end of the current and previous file `has` reads */
  scanBytes: number;
}

export class NdjsonFileSink implements AuditSink {
  private handle: FileHandle | undefined;
  private ino = 0;
  private size = 0;
  private day = '';
  private readonly opts: FileSinkOptions;

  constructor(
    readonly path: string,
    opts: Partial<FileSinkOptions> = {},
  ) {
    this.opts = { maxBytes: 256 * 1024 * 1024, daily: true, scanBytes: 64 * 1024 * 1024, ...opts };
    mkdirSync(dirname(path), { recursive: true });
  }

  private async current(): Promise<FileHandle> {
    // Another instance may have rotated the file under us: follow the path, not the old inode.
    const onDisk = await stat(this.path).catch(() => undefined);
    if (this.handle && onDisk && onDisk.ino === this.ino) return this.handle;
    await this.handle?.close().catch(() => undefined);
    this.handle = await open(this.path, 'a');
    const st = await this.handle.stat();
    this.ino = st.ino;
    this.size = st.size;
    this.day = (onDisk?.mtime ?? new Date()).toISOString().slice(0, 10);
    return this.handle;
  }

  private async rotateIfDue(): Promise<void> {
    const today = new Date().toISOString().slice(0, 10);
    const due = this.size >= this.opts.maxBytes || (this.opts.daily && this.size > 0 && this.day !== today);
    if (!due) return;
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    await rename(this.path, `${this.path}.${stamp}.${process.pid}`).catch(() => undefined); // someone else rotated first
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }

  async write(lines: string[]): Promise<void> {
    if (lines.length === 0) return;
    await this.current();
    await this.rotateIfDue();
    const fh = await this.current();
    const text = lines.join('\n') + '\n';
    await fh.appendFile(text);
    await fh.datasync();
    this.size += Buffer.byteLength(text);
  }

  async has(needles: string[]): Promise<Set<string>> {
    const found = new Set<string>();
    if (needles.length === 0) return found;
    const dir = dirname(this.path);
    const base = basename(this.path);
    const rotated = readdirSync(dir)
      .filter((f) => f.startsWith(`${base}.`) && !f.endsWith('.rejects'))
      .sort()
      .slice(-1)
      .map((f) => join(dir, f));
    for (const file of [this.path, ...rotated]) {
      const fh = await open(file, 'r').catch(() => undefined);
      if (!fh) continue;
      try {
        const { size } = await fh.stat();
        const len = Math.min(size, this.opts.scanBytes);
        const buf = Buffer.alloc(len);
        await fh.read(buf, 0, len, size - len);
        const text = buf.toString('utf8');
        for (const n of needles) if (text.includes(n)) found.add(n);
      } finally {
        await fh.close();
      }
    }
    return found;
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }
}

/** One line per event on stdout, for container log shippers. Not durable: acks follow the write. */
export class StdoutSink implements AuditSink {
  async write(lines: string[]): Promise<void> {
    if (lines.length === 0) return;
    await new Promise<void>((resolve, reject) => process.stdout.write(lines.join('\n') + '\n', (err) => (err ? reject(err) : resolve())));
  }
  async has(): Promise<Set<string>> {
    return new Set();
  }
  async close(): Promise<void> {}
}

/** Writes to every sink; an entry counts as present only when every sink that can tell has it. */
export class FanoutSink implements AuditSink {
  constructor(private readonly sinks: AuditSink[]) {}
  async write(lines: string[]): Promise<void> {
    await Promise.all(this.sinks.map((s) => s.write(lines)));
  }
  async has(needles: string[]): Promise<Set<string>> {
    const first = this.sinks[0];
    return first ? first.has(needles) : new Set();
  }
  async close(): Promise<void> {
    await Promise.all(this.sinks.map((s) => s.close()));
  }
}
