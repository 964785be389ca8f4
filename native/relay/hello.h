#ifndef PORTCULLIS_HELLO_H
#define PORTCULLIS_HELLO_H
#include <stddef.h>

/* libs/sniff MAX_RECORD_PAYLOAD: the largest TLSPlaintext fragment (RFC 8446 section 5.1) */
#define MAX_RECORD_PAYLOAD (16 * 1024)

/* The sniffed bytes w[0..n) start with a plain ClientHello naming one server (see hello.c): the
 * name, lowercased, NUL-terminated, into name (at least 254 bytes), whether an ECH extension is
 * there into *ech, and the name's length. 0: not that plain case (the hello goes to JavaScript). */
size_t hello_sni(const unsigned char *w, size_t n, char *name, int *ech);

#endif
