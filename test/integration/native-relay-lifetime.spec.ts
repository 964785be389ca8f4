// The native relay addon (native/relay) in a process of its own, in both of its modes: on Node's
// loop (the default) and on its own thread (PORTCULLIS_RELAY_THREAD=1). An open native listener
// keeps the process alive as a net.Server does; a connection's reports (accepted, hello, end)
// reach JavaScript; a refusal given inside the report callback is carried out; once the listener
// is closed and nothing else is open, the process exits by itself.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ADDON = join(__dirname, '../../native/relay/build/Release/relay.node');

// argv: addon path, "1" for the thread mode. Prints one line per step.
const SCRIPT = `
const relay = require(process.argv[1]);
const net = require('node:net');
const threaded = process.argv[2] === '1';
const RECORD = 7;
let idx = -1;
relay.start((records, payloads) => {
  for (let i = 0; i + RECORD <= records.length; i += RECORD) {
    const id = records[i], code = records[i + 3], len = records[i + 6];
    const payload = len > 0 ? payloads.subarray(records[i + 5], records[i + 5] + len) : undefined;
    if (code === 100) console.log('accepted ' + payload.toString('latin1'));
    else if (code === 101) { console.log('hello ' + payload.toString('latin1')); relay.refuse(id, Buffer.from('no\\n'), false); }
    else if (code < 100 && id < 0) { console.log('end'); setTimeout(() => { console.log('unlisten'); relay.unlisten(idx); }, 300).unref(); }
  }
}, threaded);
const bound = relay.listen('127.0.0.1', 0, 16, 1000);
idx = bound[0];
const s = net.connect(bound[1], '127.0.0.1', () => s.write('GET / HTTP/1.0\\r\\n\\r\\n'));
s.on('error', () => undefined);
s.on('close', () => console.log('client closed'));
`;

function run(threaded: boolean): Promise<{ code: number | null; lines: { at: number; line: string }[] }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['-e', SCRIPT, ADDON, threaded ? '1' : '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: { at: number; line: string }[] = [];
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        lines.push({ at: Date.now() - started, line: buf.slice(0, nl) });
        buf = buf.slice(nl + 1);
      }
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`still running after 10 s: ${JSON.stringify(lines)}`));
    }, 10_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      lines.push({ at: Date.now() - started, line: 'exit' });
      resolve({ code, lines });
    });
  });
}

describe.each([
  ['on Node’s loop', false],
  ['on its own thread', true],
])('native relay %s: reports, a refusal from the callback, process lifetime', (_name, threaded) => {
  it.skipIf(!existsSync(ADDON))('accepts, reports the hello, refuses from the callback, and the process exits once the listener closes', async () => {
    const { code, lines } = await run(threaded);
    const text = lines.map((l) => l.line);
    expect(code).toBe(0);
    expect(text).toContain('accepted 127.0.0.1');
    expect(text).toContain('hello GET / HTTP/1.0\r');
    expect(text.indexOf('end')).toBeGreaterThan(text.indexOf('hello GET / HTTP/1.0\r'));
    expect(text).toContain('client closed');
    // the unref'd timer that closes the listener 300 ms after the end fires only because the
    // open listener keeps the process alive; the process is gone soon after it closes
    const unlisten = lines.find((l) => l.line === 'unlisten')!;
    const exit = lines.find((l) => l.line === 'exit')!;
    expect(text.indexOf('exit')).toBe(text.length - 1);
    expect(exit.at - unlisten.at).toBeLessThan(1_500);
  });
});

// On Node's loop the relay's wait is where Node's thread sleeps (Node's epoll descriptor is in the
// relay's set): Node's own timers, immediates, sockets and worker-pool completions must still run
// on time while a native listener is open and nothing comes to it. A wait that missed them would
// hold each one until the relay's own next deadline (its sweep, up to a second).
const NODE_WORK = `
const relay = require(process.argv[1]);
const net = require('node:net');
const fs = require('node:fs');
relay.start(() => undefined, process.argv[2] === '1');
const [idx] = relay.listen('127.0.0.1', 0, 16, 10000);
const lateness = [];
const rtts = [];
const sleep = (ms) => new Promise((r) => { const t0 = performance.now(); setTimeout(() => { lateness.push(performance.now() - t0 - ms); r(); }, ms); });
(async () => {
  for (let i = 0; i < 10; i++) await sleep(20);
  const t0 = performance.now();
  await new Promise((r) => { let n = 0; const step = () => (++n < 1000 ? setImmediate(step) : r()); setImmediate(step); });
  const immediatesMs = performance.now() - t0;
  // a server and its client in this process: each round trip needs Node's poll to see two sockets
  const server = net.createServer((s) => s.on('data', (d) => s.write(d)));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const c = net.connect(server.address().port, '127.0.0.1');
  await new Promise((r) => c.once('connect', r));
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    await new Promise((r) => { c.once('data', r); c.write('ping'); });
    rtts.push(performance.now() - t);
    await sleep(5);
  }
  c.destroy();
  server.close();
  const f0 = performance.now();
  await fs.promises.readFile(process.argv[1]);
  const readMs = performance.now() - f0;
  console.log(JSON.stringify({ maxLateMs: Math.max(...lateness), maxRttMs: Math.max(...rtts), immediatesMs, readMs }));
  relay.unlisten(idx);
})();
`;

describe.each([
  ['on Node’s loop', false],
  ['on its own thread', true],
])('native relay %s: Node’s own work is not held up by the relay', (_name, threaded) => {
  it.skipIf(!existsSync(ADDON))('timers, immediates, socket round trips and a file read finish on time while a native listener waits', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', NODE_WORK, ADDON, threaded ? '1' : '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`still running after 20 s: ${text}`));
      }, 20_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(text);
        else reject(new Error(`exit ${code}: ${text}`));
      });
    });
    const r = JSON.parse(out.trim()) as { maxLateMs: number; maxRttMs: number; immediatesMs: number; readMs: number };
    // generous bounds for a busy CI machine; a relay that slept through Node's events would be
    // late by its sweep step (here a second: the sniff deadline is 10 s)
    expect(r.maxLateMs, JSON.stringify(r)).toBeLessThan(250);
    expect(r.maxRttMs, JSON.stringify(r)).toBeLessThan(250);
    expect(r.immediatesMs, JSON.stringify(r)).toBeLessThan(500);
    expect(r.readMs, JSON.stringify(r)).toBeLessThan(250);
  });
});
