// A small Node TLS load generator, run as its own process (`node --import tsx tls-load.ts JSON`):
//
//   mode "rate": fixed-rate (open-loop) small HTTP/1.1 requests over `connections` keep-alive TLS
//     connections. wrk2 is not in Debian and plain wrk is closed-loop, so this is the latency tool.
//     A request's latency runs from the scheduler tick that found it due (it may then wait for a
//     free connection: queueing counts) to the last byte of its response. `coP99Us` measures from
//     the ideal send instant instead (adds timer jitter, up to ~1 ms, to every candidate alike).
//   mode "idle": opens `flows` TLS connections (handshake + one small request each), prints
//     READY {json}, keeps them idle until stdin closes, then closes them and exits.
//
// Both connect to 127.0.0.1:port with SNI bench.test (no /etc/hosts needed).
import { connect } from 'node:tls';
import type { TLSSocket } from 'node:tls';

interface RateArgs {
  mode: 'rate';
  port: number;
  servername: string;
  path: string;
  rate: number;
  seconds: number;
  connections: number;
}
interface IdleArgs {
  mode: 'idle';
  port: number;
  servername: string;
  path: string;
  flows: number;
  concurrency: number;
}

/** One keep-alive connection that carries one request at a time and reports when its response is complete. */
class Conn {
  busy = false;
  private buf: Buffer[] = [];
  private have = 0;
  private need = -1;
  private onDone: ((ok: boolean) => void) | undefined;
  private readonly req: Buffer;

  constructor(
    readonly socket: TLSSocket,
    servername: string,
    path: string,
  ) {
    this.req = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${servername}\r\nUser-Agent: portcullis-bench\r\n\r\n`);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => this.finish(false));
    socket.on('error', () => undefined);
  }

  request(done: (ok: boolean) => void): void {
    this.busy = true;
    this.onDone = done;
    this.buf = [];
    this.have = 0;
    this.need = -1;
    this.socket.write(this.req);
  }

  private onData(d: Buffer): void {
    if (!this.onDone) return;
    this.buf.push(d);
    this.have += d.length;
    if (this.need < 0) {
      const all = Buffer.concat(this.buf);
      this.buf = [all];
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) return;
      const m = /content-length:\s*(\d+)/i.exec(all.subarray(0, end).toString('latin1'));
      this.need = end + 4 + Number(m?.[1] ?? 0);
    }
    if (this.have >= this.need) this.finish(true);
  }

  private finish(ok: boolean): void {
    const done = this.onDone;
    this.onDone = undefined;
    this.busy = false;
    done?.(ok);
  }
}

function open(a: { port: number; servername: string; path: string }): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: a.port, servername: a.servername, rejectUnauthorized: false });
    s.setNoDelay(true);
    const fail = (err: Error): void => reject(err);
    s.once('error', fail);
    s.once('secureConnect', () => {
      s.off('error', fail);
      resolve(new Conn(s, a.servername, a.path));
    });
  });
}

function once(c: Conn): Promise<boolean> {
  return new Promise((r) => c.request(r));
}

function pct(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

async function rate(a: RateArgs): Promise<void> {
  const conns = await Promise.all(Array.from({ length: a.connections }, () => open(a)));
  for (const c of conns) for (let i = 0; i < 20; i++) await once(c); // warm the path
  const total = Math.round(a.rate * a.seconds);
  const lat = new Float64Array(total);
  const co = new Float64Array(total);
  let done = 0;
  let errors = 0;
  let scheduled = 0;
  const queue: { t0: number; ideal: number }[] = [];
  const start = performance.now();
  const send = (c: Conn, job: { t0: number; ideal: number }): void => {
    c.request((ok) => {
      const t = performance.now();
      if (ok) {
        lat[done] = (t - job.t0) * 1000;
        co[done] = (t - job.ideal) * 1000;
        done++;
      } else errors++;
      const next = queue.shift();
      if (next && !c.socket.destroyed) send(c, next);
    });
  };
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - start) / 1000) * a.rate));
      while (scheduled < due) {
        const job = { t0: now, ideal: start + (scheduled * 1000) / a.rate };
        scheduled++;
        const free = conns.find((c) => !c.busy && !c.socket.destroyed);
        if (free) send(free, job);
        else queue.push(job);
      }
      if (scheduled >= total && done + errors >= total) return resolve();
      if (now - start > (a.seconds + 30) * 1000) return resolve();
      setTimeout(tick, 0);
    };
    tick();
  });
  const elapsed = (performance.now() - start) / 1000;
  const l = lat.slice(0, done).sort();
  const c = co.slice(0, done).sort();
  let sum = 0;
  for (const x of l) sum += x;
  for (const s of conns) s.socket.destroy();
  process.stdout.write(
    `RESULT ${JSON.stringify({ sent: scheduled, completed: done, errors, seconds: elapsed, achievedRate: done / elapsed, p50Us: pct(l, 50), p99Us: pct(l, 99), p999Us: pct(l, 99.9), maxUs: l[l.length - 1] ?? NaN, meanUs: sum / Math.max(1, done), coP50Us: pct(c, 50), coP99Us: pct(c, 99), coP999Us: pct(c, 99.9) })}\n`,
  );
}

async function idle(a: IdleArgs): Promise<void> {
  const conns: Conn[] = [];
  let failed = 0;
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < a.flows) {
      next++;
      try {
        const c = await open(a);
        if (await once(c)) conns.push(c);
        else {
          failed++;
          c.socket.destroy();
        }
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: a.concurrency }, worker));
  const alive = conns.filter((c) => !c.socket.destroyed).length;
  process.stdout.write(`READY ${JSON.stringify({ opened: conns.length, alive, failed, ms: performance.now() - t0 })}\n`);
  await new Promise<void>((r) => {
    process.stdin.on('end', () => r());
    process.stdin.on('close', () => r());
    process.stdin.resume();
  });
  const stillAlive = conns.filter((c) => !c.socket.destroyed).length;
  for (const c of conns) c.socket.destroy();
  process.stdout.write(`CLOSED ${JSON.stringify({ stillAlive })}\n`);
}

const args = JSON.parse(process.argv[2] ?? '{}') as RateArgs | IdleArgs;
(args.mode === 'rate' ? rate(args) : idle(args)).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
