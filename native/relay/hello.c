/* The server name of a ClientHello, for the relay's express lane (relay.c): read exactly as
 * libs/sniff reads it (readClientHello, parseClientHelloBody, normalizeName), but only for the
 * plain case. Anything else (a hello split over records, several or odd names, a name the fast
 * path of normalizeName would not take as it is) answers 0, and the hello goes to JavaScript as
 * before. A name given here is the name libs/sniff would give for the same bytes: the property is
 * checked against the JavaScript reader on generated, real and mutated hellos
 * (test/integration/express-lane.spec.ts). */
#include "hello.h"
#include <stdint.h>
#include <string.h>

#define MAX_NAME 253
#define MAX_LABEL 63

static unsigned u16(const unsigned char *b, size_t o) { return ((unsigned)b[o] << 8) | b[o + 1]; }

/* libs/sniff names.ts plainName: lowercased into out (MAX_NAME + 1 bytes); its length, or 0 */
static size_t plain_name(const unsigned char *raw, size_t len, char *out) {
  size_t end = len;
  if (end > 0 && raw[end - 1] == '.') end--;
  if (end == 0 || end > MAX_NAME) return 0;
  size_t start = 0;
  unsigned char prev = '.';
  for (size_t i = 0; i < end; i++) {
    unsigned char c = raw[i];
    if (c == '.') {
      size_t n = i - start;
      if (n == 0 || n > MAX_LABEL || prev == '-') return 0;
      start = i + 1;
    } else if (c == '-') {
      if (prev == '.') return 0;
    } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
      return 0;
    }
    prev = c;
    out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  size_t n = end - start;
  if (n == 0 || n > MAX_LABEL || prev == '-') return 0;
  /* a last label of digits only, or 0x..., makes the host an IPv4 address to URL parsers */
  int digits = 1;
  for (size_t i = start; i < end && digits; i++) digits = raw[i] >= '0' && raw[i] <= '9';
  if (digits || (raw[start] == '0' && start + 1 < end && (raw[start + 1] | 0x20) == 'x')) return 0;
  out[end] = 0;
  return end;
}

size_t hello_sni(const unsigned char *w, size_t n, char *name, int *ech) {
  *ech = 0;
  /* one handshake record holding exactly the ClientHello (libs/sniff refuses a record with more
   * after the hello; a hello over several records is left to it) */
  if (n < 9 || w[0] != 0x16 || w[1] != 0x03 || w[2] > 0x04) return 0;
  size_t rlen = u16(w, 3);
  if (rlen == 0 || rlen > MAX_RECORD_PAYLOAD || 5 + rlen > n || w[5] != 0x01) return 0;
  size_t end = ((size_t)w[6] << 16) | ((size_t)w[7] << 8) | w[8];
  if (end == 0 || 4 + end != rlen) return 0;
  const unsigned char *b = w + 9;
  /* parseClientHelloBody */
  if (end < 2 + 32 + 1 || b[0] != 0x03) return 0;
  size_t o = 34;
  size_t sid = b[o++];
  if (sid > 32 || o + sid > end) return 0;
  o += sid;
  if (o + 2 > end) return 0;
  size_t suites = u16(b, o);
  o += 2;
  if (suites < 2 || suites % 2 != 0 || o + suites > end) return 0;
  o += suites;
  if (o + 1 > end) return 0;
  size_t comp = b[o++];
  if (comp < 1 || o + comp > end) return 0;
  o += comp;
  if (o + 2 > end) return 0; /* no extensions, so no server name */
  size_t exts = u16(b, o);
  o += 2;
  if (o + exts != end) return 0;
  uint64_t seen[65536 / 64];
  memset(seen, 0, sizeof(seen));
  size_t found = 0;
  while (o < end) {
    if (o + 4 > end) return 0;
    unsigned type = u16(b, o);
    size_t len = u16(b, o + 2);
    o += 4;
    if (o + len > end) return 0;
    if (seen[type >> 6] & ((uint64_t)1 << (type & 63))) return 0; /* duplicate-extension */
    seen[type >> 6] |= (uint64_t)1 << (type & 63);
    size_t x = o + len;
    if (type == 0x0000) { /* server_name */
      if (len < 2 || o + 2 + u16(b, o) != x) return 0;
      size_t hosts = 0;
      for (size_t p = o + 2; p < x;) {
        if (p + 3 > x) return 0;
        unsigned kind = b[p];
        size_t nl = u16(b, p + 1);
        p += 3;
        if (p + nl > x) return 0;
        if (kind == 0) {
          if (++hosts > 1) return 0; /* multiple */
          found = plain_name(b + p, nl, name);
          if (!found) return 0; /* empty, an address, or a name for the full check */
        }
        p += nl;
      }
      if (hosts == 0) return 0; /* empty */
    } else if (type == 0x0010) { /* alpn */
      if (len < 2) return 0;
      size_t list = u16(b, o);
      if (list < 2 || o + 2 + list != x) return 0;
      for (size_t p = o + 2; p < x;) {
        size_t nl = b[p++];
        if (nl == 0 || p + nl > x) return 0;
        p += nl;
      }
    } else if (type == 0x002b) { /* supported_versions */
      if (len < 1) return 0;
      size_t list = b[o];
      if (list < 2 || list % 2 != 0 || 1 + list != len) return 0;
    } else if (type == 0x000a) { /* supported_groups */
      if (len < 2) return 0;
      size_t list = u16(b, o);
      if (list < 2 || list % 2 != 0 || 2 + list != len) return 0;
    } else if (type == 0xfe0d) { /* encrypted_client_hello */
      if (len < 1) return 0;
      unsigned kind = b[o];
      if (kind == 1 && len != 1) return 0;
      if (kind == 0) {
        size_t p = o + 5;
        if (p + 3 > x) return 0;
        p += 1;
        p += 2 + u16(b, p);
        if (p + 2 > x) return 0;
        size_t payload = u16(b, p);
        p += 2;
        if (payload == 0 || p + payload != x) return 0;
      }
      *ech = 1;
    }
    o = x;
  }
  return found;
}
