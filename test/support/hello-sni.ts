// The relay's own ClientHello reader (native/relay hello.c, the express lane's) against libs/sniff's:
// a name the relay reads must be the name, and the ECH flag, that libs/sniff reads from the same bytes.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import fc from 'fast-check';
import { readClientHello } from '@portcullis/sniff';

const addon = createRequire(__filename)(join(__dirname, '../../native/relay/build/Release/relay.node')) as { helloSni(b: Buffer): [string, boolean] | null };

/** true: the relay read a name (the same as libs/sniff's); false: it left the hello to JavaScript. Throws on a disagreement. */
export function helloSniAgrees(wire: Buffer): boolean {
  const c = addon.helloSni(wire);
  if (!c) return false;
  const r = readClientHello(wire);
  if (r.kind !== 'hello') throw new Error(`the relay read ${c[0]} from bytes libs/sniff calls ${r.kind}: ${wire.toString('hex')}`);
  if (r.hello.sni.kind !== 'name' || r.hello.sni.name !== c[0]) throw new Error(`the relay read ${c[0]}, libs/sniff ${JSON.stringify(r.hello.sni)}: ${wire.toString('hex')}`);
  if (r.hello.ech.present !== c[1]) throw new Error(`ECH: the relay ${c[1]}, libs/sniff ${r.hello.ech.present}: ${wire.toString('hex')}`);
  return true;
}

/**
 * Random bytes as a ClientHello body behind a record and handshake header whose lengths fit them,
 * so every case reaches the body reader (random lengths would stop almost all at the framing).
 */
export const framedRandomHelloArb: fc.Arbitrary<Buffer> = fc.tuple(fc.nat({ max: 4 }), fc.uint8Array({ maxLength: 600 })).map(([version, tail]) => {
  const rest = Buffer.from(tail);
  const body = 4 + rest.length;
  return Buffer.concat([Buffer.from([0x16, 0x03, version, (body >> 8) & 0xff, body & 0xff, 0x01, 0, (rest.length >> 8) & 0xff, rest.length & 0xff]), rest]);
});
