// A deliberately naive second ClientHello reader for differential tests: whole buffer, Node's bounds-checked
// readers (they throw on overrun, caught once), no incremental state. Agreement with ClientHelloReader on
// every hello it accepts is a property the fuzzers check.
import { isGrease } from '../client-hello';

export interface ReferenceHello {
  helloBytes: number;
  legacyVersion: number;
  cipherSuites: number[];
  extensions: number[];
  /** host_name entries, latin1, undefined without a server_name extension */
  hostNames: string[] | undefined;
  alpn: string[];
}

export function referenceParse(wire: Uint8Array): ReferenceHello | undefined {
  try {
    return parse(Buffer.from(wire.buffer, wire.byteOffset, wire.byteLength));
  } catch {
    return undefined;
  }
}

function parse(wire: Buffer): ReferenceHello | undefined {
  const fragments: Buffer[] = [];
  let off = 0;
  let need = Infinity;
  let got = 0;
  while (got < need) {
    if (wire.readUInt8(off) !== 0x16) return undefined;
    const len = wire.readUInt16BE(off + 3);
    const frag = wire.subarray(off + 5, off + 5 + len);
    if (frag.length !== len) return undefined;
    fragments.push(frag);
    got += len;
    off += 5 + len;
    if (need === Infinity && got >= 4) need = 4 + Buffer.concat(fragments).readUIntBE(1, 3);
  }
  const hs = Buffer.concat(fragments);
  if (hs.length !== need || hs.readUInt8(0) !== 1) return undefined;
  const body = hs.subarray(4);
  let p = 0;
  const legacyVersion = body.readUInt16BE(p);
  p += 34;
  p += 1 + body.readUInt8(p);
  const suitesLen = body.readUInt16BE(p);
  const cipherSuites: number[] = [];
  for (let i = 0; i < suitesLen; i += 2) cipherSuites.push(body.readUInt16BE(p + 2 + i));
  p += 2 + suitesLen;
  p += 1 + body.readUInt8(p);
  const extensions: number[] = [];
  let hostNames: string[] | undefined;
  const alpn: string[] = [];
  if (p < body.length) {
    const extEnd = p + 2 + body.readUInt16BE(p);
    p += 2;
    while (p < extEnd) {
      const type = body.readUInt16BE(p);
      const len = body.readUInt16BE(p + 2);
      const data = body.subarray(p + 4, p + 4 + len);
      if (!isGrease(type)) extensions.push(type);
      if (type === 0) {
        hostNames = [];
        for (let q = 2; q < data.length; ) {
          const nl = data.readUInt16BE(q + 1);
          if (data.readUInt8(q) === 0) hostNames.push(data.toString('latin1', q + 3, q + 3 + nl));
          q += 3 + nl;
        }
      }
      if (type === 16) {
        for (let q = 2; q < data.length; ) {
          const nl = data.readUInt8(q);
          const name = data.subarray(q + 1, q + 1 + nl);
          if (!(nl === 2 && isGrease(name.readUInt16BE(0)))) alpn.push(name.toString('latin1'));
          q += 1 + nl;
        }
      }
      p += 4 + len;
    }
  }
  return { helloBytes: off, legacyVersion, cipherSuites: cipherSuites.filter((c) => !isGrease(c)), extensions, hostNames, alpn };
}
