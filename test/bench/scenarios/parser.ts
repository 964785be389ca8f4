// ClientHello parse rate: a typical ~512-byte hello (curl) and a ~2 KB one (chromium, X25519MLKEM768), whole
// and in 1-byte reads. Ratios are against copying the same bytes (Buffer.from), measured in the same run.
import type { BenchRow, BenchScenario } from '../types';
import { ClientHelloReader, readClientHello } from '../../../libs/sniff/src/index';
import { capturedHellos } from '../../../libs/sniff/src/fixtures/hellos';

const ROUNDS = 5;
const ROUND_MS = 300;

/** Operations per second of fn: the median of ROUNDS timed rounds, after a warm-up. */
function rate(fn: () => unknown): number {
  const batch = (n: number): number => {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink = fn();
    return Number(process.hrtime.bigint() - t) / 1e6;
  };
  let n = 64;
  while (batch(n) < 20) n *= 2; // warm-up and calibration
  const rates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    let ops = 0;
    let ms = 0;
    while (ms < ROUND_MS) {
      ms += batch(n);
      ops += n;
    }
    rates.push((ops / ms) * 1000);
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(ROUNDS / 2)] ?? 0;
}

let sink: unknown;

function parseWhole(wire: Buffer): () => unknown {
  return () => readClientHello(wire);
}

function parseBytewise(wire: Buffer): () => unknown {
  const chunks = Array.from({ length: wire.length }, (_, i) => wire.subarray(i, i + 1));
  return () => {
    const r = new ClientHelloReader();
    let out;
    for (const c of chunks) out = r.push(c);
    return out;
  };
}

const scenario: BenchScenario = {
  name: 'parser',
  async run() {
    const inputs = [
      { label: 'typical', fixture: 'curl' },
      { label: 'pq-2k', fixture: 'chromium' },
    ];
    const rows: BenchRow[] = [];
    const notes: string[] = [];
    for (const { label, fixture } of inputs) {
      const wire = Buffer.from(capturedHellos[fixture] ?? '', 'hex');
      const check = readClientHello(wire);
      if (check.kind !== 'hello') throw new Error(`fixture ${fixture} does not parse: ${check.kind}`);
      const needle = Buffer.from('example.test');
      const copy = rate(() => Buffer.from(wire));
      const scan = rate(() => wire.indexOf(needle));
      const whole = rate(parseWhole(wire));
      const bytewise = rate(parseBytewise(wire));
      const size = `${wire.length} B ${fixture}`;
      rows.push(
        { metric: `${label} baseline copy (${size})`, value: Math.round(copy), unit: 'ops/s', ratio: 1 },
        { metric: `${label} baseline indexOf SNI (${size})`, value: Math.round(scan), unit: 'ops/s', ratio: scan / copy },
        { metric: `${label} parse whole (${size})`, value: Math.round(whole), unit: 'hellos/s', ratio: whole / copy },
        { metric: `${label} parse 1-byte reads (${size})`, value: Math.round(bytewise), unit: 'hellos/s', ratio: bytewise / copy },
        { metric: `${label} parse whole throughput`, value: Math.round((whole * wire.length) / 1e6), unit: 'MB/s' },
        { metric: `${label} parse 1-byte reads throughput`, value: Math.round((bytewise * wire.length) / 1e6), unit: 'MB/s' },
      );
      notes.push(`${label}: whole parse costs ${(1e6 / whole).toFixed(2)} µs per hello; 1-byte reads ${(1e6 / bytewise / wire.length).toFixed(3)} µs per byte (${(whole / bytewise).toFixed(1)}x the whole parse)`);
    }
    notes.push('ratio = rate / rate of Buffer.from(copy of the same bytes), same run; median of 5 rounds of 300 ms');
    void sink;
    return { rows, notes };
  },
};

export default scenario;
