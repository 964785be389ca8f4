// First-bytes protocol guess: tells a TLS ClientHello, an SSH banner and an HTTP request line apart.

export type DetectedProtocol = 'tls' | 'ssh' | 'http' | 'unknown' | 'need-more';

/** Request methods recognised at the start of an HTTP/1.x request line (PRI: the HTTP/2 preface). */
export const HTTP_METHODS: readonly string[] = Object.freeze(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'PRI']);

type Verdict = 'match' | 'prefix' | 'no';

const HTTP_SIGNATURES: readonly Uint8Array[] = HTTP_METHODS.map((m) => Uint8Array.from(Buffer.from(`${m} `, 'latin1')));
const SSH_SIGNATURE = Uint8Array.from(Buffer.from('SSH-', 'latin1'));

function literal(bytes: Uint8Array, sig: Uint8Array): Verdict {
  const n = Math.min(bytes.length, sig.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== sig[i]) return 'no';
  return bytes.length >= sig.length ? 'match' : 'prefix';
}

/** A TLS record header starting a handshake: 0x16, then version 0x03 0x00..0x04. */
function tls(bytes: Uint8Array): Verdict {
  if (bytes.length === 0) return 'prefix';
  if (bytes[0] !== 0x16) return 'no';
  if (bytes.length === 1) return 'prefix';
  if (bytes[1] !== 0x03) return 'no';
  if (bytes.length === 2) return 'prefix';
  return (bytes[2] ?? 0xff) <= 0x04 ? 'match' : 'no';
}

/**
 * Guesses the protocol from the first bytes a client sent. Answers 'need-more' only while the bytes are a
 * proper prefix of some signature (so at most 8 bytes, "OPTIONS "), and never throws.
 */
export function detectProtocol(bytes: Uint8Array): DetectedProtocol {
  let waiting = false;
  const t = tls(bytes);
  if (t === 'match') return 'tls';
  if (t === 'prefix') waiting = true;
  const s = literal(bytes, SSH_SIGNATURE);
  if (s === 'match') return 'ssh';
  if (s === 'prefix') waiting = true;
  for (const sig of HTTP_SIGNATURES) {
    const h = literal(bytes, sig);
    if (h === 'match') return 'http';
    if (h === 'prefix') waiting = true;
  }
  return waiting ? 'need-more' : 'unknown';
}
