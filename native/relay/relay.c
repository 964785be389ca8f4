/* The edge's data plane once a flow is decided and connected: both sockets are handed to one relay
 * thread per process that copies bytes with recv/send through one 256 KiB scratch buffer, driven by a
 * edge-triggered epoll. No JavaScript runs per chunk; JS hears of a flow again only when it ends
 * (bytes each way and why), in batches through one thread-safe function.
 *
 * Semantics match the JavaScript relay (libs/edge/src/flow.ts): an end (FIN) from one side becomes
 * a shutdown(SHUT_WR) of the other once the bytes before it are written; the flow ends when both
 * directions have; an error on either side closes both; a flow idle for idleMs in both directions
 * is closed. The first reason wins.
 *
 * Two ways to run it (start's second argument):
 *   inline (threaded false; the edge's default on up to two CPUs): Node's thread runs the relay
 *           from a prepare handle and sleeps in the relay's epoll_wait, with Node's own epoll
 *           descriptor in the relay's set; JS's commands run inside the call that gives them;
 *           records go to JS from that handle. No cross-thread wake-up.
 *   threaded: one relay thread per process; JS's commands are queued for it (an eventfd wakes it
 *           when it sleeps) and records come back through a thread-safe function. Copying goes on
 *           while JS is busy, at the price of a cross-CPU wake-up each way.
 *
 * JS API (per environment):
 *   start(cb, threaded)    cb(Float64Array [id, bytesUp, bytesDown, reason, errno, payloadOffset,
 *                          payloadLength, ...], payloads: Buffer | undefined) per batch
 *   adopt(clientFd, upstreamFd, id, idleMs, upFirst|null, downFirst|null, flags) -> boolean
 *                          dups both descriptors (the caller then destroys its sockets); flags: 1 the
 *                          client already ended, 2 the upstream already ended
 *   killAll(reason)        closes every flow with that reason (drain timeout)
 *
 * Native intake (SNI listeners): the thread also owns listening sockets, accepts, and reads each
 * connection's first bytes until the TLS record framing says the ClientHello is complete (the same
 * rule as libs/sniff's ClientHelloReader), the client closes, the sniff deadline passes or 64 KiB
 * are held. JS parses those bytes, decides, connects, and then either attaches the upstream or
 * refuses; it never creates a net.Socket for the client.
 *   listen(host, port, backlog, sniffMs[, fd]) -> [listener, port]   unlisten(listener)
 *           with fd: accept on (a duplicate of) that listening socket instead of opening one
 *   bindListen(host, port, backlog) -> [fd, port]: only opens a listening socket (an edge
 *           cluster's primary: its workers inherit it and each listen() on it)
 *   records with code 100 accepted [id, listener, peerPort] + the peer address (payload);
 *           101 hello [id, how (0 complete, 1 closed, 2 timeout, 3 full)] + the bytes (payload);
 *           102 fd-limit [0, listener, peerPort] + address: accepted and closed at once (EMFILE);
 *           103 accept error [0, listener, 0, 103, errno]
 *   attach(id, upstreamFd, idleMs, downFirst|null, flags) -> boolean: the sniffed bytes go to the
 *           upstream first, then both ways as adopt(); flags 2: the upstream already ended
 *   connect(id, address, port, timeoutMs, idleMs) -> boolean: the thread connects to that address
 *           (a non-blocking connect with a deadline); record 104 [id, 1 connected | 0 failed, 0, 104,
 *           errno]; once connected it relays as after attach(); after a failure JS refuses
 *   refuse(id, reply|null, graceful): graceful sends reply, half-closes, discards what the client
 *           still sends until it closes (at most 2 s); otherwise closes at once. A flow the express
 *           lane already relays is closed at once either way.
 *
 * The express lane (hello.c, libs/edge express.ts): JS gives routes, each a decision it made that
 * the relay may repeat. A complete hello whose server name (read as libs/sniff reads it, plain
 * cases only) matches a route for the same listener, client address and ECH flag, while the
 * route holds and the intake flows open are well under JS's connection limits, is connected
 * straight to the route's address; JS gets record 105 [id, route id] instead of the hello, then
 * 104 as after its own connect.
 *   route(listener, peer, sni, ech, address, port, ttlMs, routeId, idleMs, timeoutMs) -> boolean
 *   clearRoutes()   expressLimits(maxFlows, maxPerSource)   helloSni(bytes) -> [name, ech] | null
 * Accepted connections have negative ids; every one ends with an end record.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "hello.h"

/* One read's most. Copying through user space 256 KiB at a time beat splice(2) through a pipe
 * (which this relay used past 256 KiB a direction) on the bulk benchmark here: 1.19-1.23x the
 * MB/s at the same or less CPU per GiB, with the relay on Node's loop and on its own thread.
 * Copying 64 KiB at a time was as fast but cost ~1.15x the CPU per GiB. */
#define SCRATCH (256 * 1024)
/* a direction moves at most this much per turn before the flow waits on the again list, so that
 * one busy flow does not starve the others */
#define FAIR_SHARE (1024 * 1024)
/* a record: [id, a, b, code, errno, payload offset, payload length] (the payload: bytes in the
 * batch's one payload buffer; length 0: none) */
#define RECORD 7
#define MAX_EVENTS 256

enum { R_NONE = 0, R_CLIENT_CLOSED, R_UPSTREAM_CLOSED, R_IDLE, R_CLIENT_ERROR, R_UPSTREAM_ERROR, R_SHUTDOWN };
enum { EV_ACCEPTED = 100, EV_HELLO, EV_FD_LIMIT, EV_ACCEPT_ERROR, EV_CONNECTED, EV_EXPRESS };
enum { H_COMPLETE = 0, H_CLOSED, H_TIMEOUT, H_FULL };
/* RELAY: both sockets, bytes flowing; SNIFF: reading the client's first bytes; WAIT: JS is
 * deciding and connecting; LINGER: refused, discarding the client's bytes until it closes */
enum { ST_RELAY = 0, ST_SNIFF, ST_WAIT, ST_LINGER, ST_CONNECTING };
/* libs/sniff: MAX_CLIENT_HELLO_BYTES (MAX_RECORD_PAYLOAD: hello.h) */
#define MAX_HELLO (64 * 1024)
#define LINGER_MS 2000
#define MAX_LISTENERS 16
#define HBUCKETS 4096
#define NOTIFY_WITHIN_MS 20 /* libs/edge native-relay.ts REPORTS_WITHIN_MS */
/* the express lane's routes: at most this many (libs/edge express.ts MAX_ROUTES), in this many chains */
#define MAX_ROUTES 4096
#define ROUTE_BUCKETS 1024

typedef struct flow flow;
typedef struct {
  flow *f;
  int i;
  int fd;
  int registered;
  /* the relay made this descriptor (accept4, socket) and nothing else holds its file: closing it
   * takes it out of the epoll set, with no EPOLL_CTL_DEL first. A descriptor dup()ed from a Node
   * socket (adopt, attach) is not owned: its file outlives our close until Node closes its own. */
  int owned;
  /* edge-triggered readiness, as the last event left it and the last call found it: recv may
   * have bytes (or the end) to give; send may take bytes */
  int readable, writable;
  /* the peer's FIN has arrived (EPOLLRDHUP): read on to the end, whatever a short read suggests */
  int rdhup;
} side;
/* d[k] reads s[k] and writes s[1-k]: d[0] client -> upstream, d[1] upstream -> client */
typedef struct {
  char *buf;
  size_t off, len;
  int eof, shut;
  uint64_t bytes;
} dir;
struct flow {
  double id;
  side s[2];
  dir d[2];
  int64_t last;
  int idle_ms;
  int reason, err;
  int dead;
  /* queued: on the again list (stopped at its fair share with bytes still readable) */
  int queued;
  flow *prev, *next, *again;
  /* native intake: the state, the sniff or linger deadline, the sniff buffer's size (d[0].buf),
   * and the id table's chain */
  int state;
  int64_t deadline;
  size_t cap;
  flow *hnext;
  /* native intake: the listener that accepted it and the client's address as JS got it (the
   * express lane's key) */
  int lidx;
  char peer[INET6_ADDRSTRLEN];
  /* the intake flows open from that address (counted from accept to finish), or NULL */
  struct source *src;
};

/* Intake flows open per client address: the express lane stays within JS's connection limits. */
typedef struct source {
  struct source *next;
  int count;
  char peer[INET6_ADDRSTRLEN];
} source;
#define SOURCE_BUCKETS 1024

/* The express lane: a route is a decision JS made and may be repeated without asking it. The
 * same listener, client address, server name and ECH flag within `expires` connect straight to
 * `sa` (the address JS checked), and JS hears of the flow as EV_EXPRESS [id, route id]. */
typedef struct route {
  struct route *next;
  int lidx, ech;
  char peer[64];
  char sni[256];
  size_t sni_len;
  struct sockaddr_storage sa;
  socklen_t salen;
  int64_t expires;
  double rid;
  int idle_ms, timeout_ms;
} route;

/* a listening socket: s.i == 2 tells it from a flow's side in an epoll event */
typedef struct {
  side s;
  /* open: 0 free, 1 listening, 2 unlisten() asked (the thread closes it and frees the slot) */
  int idx, fd, open, paused;
  int sniff_ms;
  int64_t resume_at;
} lsn;

enum { C_REFUSE = 1, C_ATTACH, C_UNLISTEN, C_CONNECT, C_ROUTE, C_ROUTES_CLEAR };
typedef struct cmd {
  struct cmd *next;
  int type;
  double id;
  int fd, flags, idle, timeout;
  char *buf;
  size_t len;
  struct sockaddr_storage sa;
  socklen_t salen;
} cmd;

typedef struct {
  int ep, evfd;
  pthread_t thread;
  int started;
  pthread_mutex_t mu;
  /* guarded by mu */
  flow *incoming;
  int kill_reason;
  int stop;
  double *done;
  size_t done_len, done_cap;
  /* the records' payloads (addresses, hellos), back to back: one buffer for JS per batch */
  char *pay;
  size_t pay_len, pay_cap;
  cmd *cmds;
  int notify_pending;
  /* a record JS should have now (a hello, a failed connect) is queued; else the queue waits for
   * one, or for NOTIFY_WITHIN_MS after its oldest record: each wake-up of the JS thread is a
   * cross-CPU wake (an IPI, a VM exit here), so ends and accepts ride along with hellos */
  int urgent;
  int64_t oldest;
  /* the relay thread is (about to be) in epoll_wait: a command needs the eventfd to wake it;
   * otherwise it will find the command before it sleeps (seq_cst on both sides) */
  int sleeping;
  /* relay thread only */
  flow *head;
  flow *graveyard;
  flow *again;
  int min_idle_ms;
  /* the shortest sniff, connect or linger deadline given so far: the sweep checks them a tenth
   * of it apart (25 ms – 1 s) */
  int min_deadline_ms;
  double next_cid;
  /* kept open so that at EMFILE one connection can still be accepted, audited and closed */
  int spare_fd;
  flow *table[HBUCKETS];
  route *routes[ROUTE_BUCKETS];
  int nroutes;
  /* JS's limits (edge.maxConnections as clamped, edge.maxConnectionsPerSource; 0: no express
   * lane) and the intake flows open, in all and per client address */
  int max_flows, max_per_source;
  int intake_open;
  source *sources[SOURCE_BUCKETS];
  lsn listeners[MAX_LISTENERS];
  char scratch[SCRATCH];
  int64_t last_sweep;
  /* main thread only */
  napi_threadsafe_function tsfn;
  int64_t active;
  /* inline mode (start(cb, false)): no thread; Node's thread sleeps in the relay's epoll_wait
   * from a prepare handle (Node's epoll descriptor is in the relay's set), commands run inside
   * the JS call that gives them, and records go to JS from the prepare handle. No cross-thread
   * wake-up at all: on a box where the proxy shares its cores with the TLS endpoints, each one
   * was a context switch and an IPI. */
  int inline_mode;
  napi_env env;
  napi_ref cb_ref;
  napi_async_context async_ctx;
  uv_prepare_t *prepare;
  uv_idle_t *idle;
  /* the epoll event that says Node's own epoll descriptor has events (its data.ptr) */
  char loop_mark;
} relay_t;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake(relay_t *r) {
  uint64_t one = 1;
  ssize_t ignored = write(r->evfd, &one, sizeof(one));
  (void)ignored;
}

/* Wakes the relay thread only if it sleeps: a busy one takes new work before it sleeps again. */
static void nudge(relay_t *r) {
  if (__atomic_load_n(&r->sleeping, __ATOMIC_SEQ_CST)) wake(r);
}

/* ---- relay thread ---- */

/* Queues a record (and a copy of its payload) for JS. A record that cannot be queued (out of
 * memory) is dropped; its flow's end still comes. */
static void emit(relay_t *r, double id, double a, double b, int code, int err, const char *payload, size_t plen) {
  pthread_mutex_lock(&r->mu);
  if (r->done_len + RECORD > r->done_cap) {
    size_t cap = r->done_cap ? r->done_cap * 2 : 64 * RECORD;
    double *grown = realloc(r->done, cap * sizeof(double));
    if (grown) {
      r->done = grown;
      r->done_cap = cap;
    }
  }
  if (payload && plen && r->pay_len + plen > r->pay_cap) {
    size_t cap = r->pay_cap ? r->pay_cap : 16 * 1024;
    while (cap < r->pay_len + plen) cap *= 2;
    char *grown = realloc(r->pay, cap);
    if (grown) {
      r->pay = grown;
      r->pay_cap = cap;
    } else plen = 0;
  }
  if (r->done_len + RECORD <= r->done_cap) {
    if (r->done_len == 0) r->oldest = now_ms();
    if (code == EV_HELLO || (code == EV_CONNECTED && a == 0)) r->urgent = 1;
    double *rec = r->done + r->done_len;
    rec[0] = id;
    rec[1] = a;
    rec[2] = b;
    rec[3] = code;
    rec[4] = err;
    rec[5] = (double)r->pay_len;
    rec[6] = payload ? (double)plen : 0;
    if (payload && plen) {
      memcpy(r->pay + r->pay_len, payload, plen);
      r->pay_len += plen;
    }
    r->done_len += RECORD;
  }
  pthread_mutex_unlock(&r->mu);
}

static flow **bucket(relay_t *r, double id) {
  return &r->table[(uint64_t)(-id) & (HBUCKETS - 1)];
}

static flow *lookup(relay_t *r, double id) {
  for (flow *f = *bucket(r, id); f; f = f->hnext)
    if (f->id == id) return f;
  return NULL;
}

/* FNV-1a over len bytes, from h (2166136261 to start) */
static uint32_t fnv(uint32_t h, const char *t, size_t len) {
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)t[i]) * 16777619u;
  return h;
}

static unsigned text_hash(const char *t) {
  return fnv(2166136261u, t, strlen(t));
}

/* One more intake flow open from `peer`: its count (NULL when out of memory: not counted). */
static source *source_open(relay_t *r, const char *peer) {
  source **p = &r->sources[text_hash(peer) & (SOURCE_BUCKETS - 1)];
  for (source *s = *p; s; s = s->next)
    if (strcmp(s->peer, peer) == 0) {
      s->count++;
      r->intake_open++;
      return s;
    }
  source *s = calloc(1, sizeof(source));
  if (!s) return NULL;
  memcpy(s->peer, peer, sizeof(s->peer));
  s->count = 1;
  s->next = *p;
  *p = s;
  r->intake_open++;
  return s;
}

static void source_done(relay_t *r, source *s) {
  r->intake_open--;
  if (--s->count > 0) return;
  source **p = &r->sources[text_hash(s->peer) & (SOURCE_BUCKETS - 1)];
  while (*p && *p != s) p = &(*p)->next;
  if (*p) *p = s->next;
  free(s);
}

/* Room under a limit for the express lane: JS counts a flow as closed only when its end report
 * arrives (up to NOTIFY_WITHIN_MS later), so near a limit the relay leaves the flow to JS, which
 * refuses exactly at it. */
static int under(int open, int limit) {
  int margin = limit / 8;
  if (margin > 64) margin = 64;
  if (margin < 1) margin = 1;
  return open <= limit - margin;
}

static void finish(relay_t *r, flow *f, int reason, int err) {
  if (f->dead) return;
  f->dead = 1;
  if (!f->reason) {
    f->reason = reason;
    f->err = err;
  }
  for (int i = 0; i < 2; i++) {
    if (f->s[i].registered && !f->s[i].owned) epoll_ctl(r->ep, EPOLL_CTL_DEL, f->s[i].fd, NULL);
    if (f->s[i].fd >= 0) close(f->s[i].fd);
    free(f->d[i].buf);
    f->d[i].buf = NULL;
  }
  if (f->src) {
    source_done(r, f->src);
    f->src = NULL;
  }
  if (f->id < 0) {
    flow **p = bucket(r, f->id);
    while (*p && *p != f) p = &(*p)->hnext;
    if (*p) *p = f->hnext;
  }
  if (f->prev) f->prev->next = f->next;
  else r->head = f->next;
  if (f->next) f->next->prev = f->prev;
  f->next = r->graveyard; /* freed after the current batch of events, which may still name it */
  r->graveyard = f;
  emit(r, f->id, (double)f->d[0].bytes, (double)f->d[1].bytes, f->reason, f->err, NULL, 0);
}

/* `at`: the side whose socket failed (0 client, 1 upstream) */
static void fail(relay_t *r, flow *f, int at, int err) {
  finish(r, f, at == 0 ? R_CLIENT_ERROR : R_UPSTREAM_ERROR, err);
}

/*
 * Whether direction k may read now: not once its end was read (the FIN is passed on, and the flow
 * ends when both directions have), not while its socket would block, and not past FAIR_SHARE
 * bytes in one turn (the flow goes on the again list, so that one busy flow does not starve the
 * others).
 */
static int may_read(relay_t *r, flow *f, int k, int round) {
  dir *d = &f->d[k];
  if (d->eof) {
    if (!d->shut) {
      d->shut = 1;
      /* the other direction has ended too: closing sends this FIN (that socket was read to its
       * end, so close() does not reset), one system call fewer per flow */
      if (f->d[1 - k].shut) finish(r, f, R_NONE, 0);
      else shutdown(f->s[1 - k].fd, SHUT_WR);
    }
    return 0;
  }
  if (!f->s[k].readable) return 0;
  if (round >= FAIR_SHARE / SCRATCH) {
    if (!f->queued) {
      f->queued = 1;
      f->again = r->again;
      r->again = f;
    }
    return 0;
  }
  return 1;
}

/*
 * What a read of direction k returned: 1, bytes to pass on; 0, the end, recorded
 * (the caller goes on to pass the FIN); -1, stop here (the socket would block, or the flow failed).
 */
static int took(relay_t *r, flow *f, int k, ssize_t n) {
  if (n > 0) return 1;
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) f->s[k].readable = 0;
    else fail(r, f, k, errno);
    return -1;
  }
  f->d[k].eof = 1;
  f->s[k].readable = 0;
  if (!f->reason) f->reason = k == 0 ? R_CLIENT_CLOSED : R_UPSTREAM_CLOSED;
  return 0;
}

/*
 * Moves what it can of direction k (reads side k, writes side 1-k) until a side would block, the
 * flow ends, or FAIR_SHARE bytes: then the flow waits on the again list so that one busy flow
 * does not starve the others. Edge-triggered: a side is tried only while its readiness flag says
 * so, and the flag is cleared when the kernel says it would block.
 */
static void pump(relay_t *r, flow *f, int k) {
  dir *d = &f->d[k];
  side *in = &f->s[k], *out = &f->s[1 - k];
  for (int round = 0; !f->dead; round++) {
    if (d->len > d->off) {
      if (!out->writable) return;
      ssize_t w = send(out->fd, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) {
          out->writable = 0;
          return;
        }
        return fail(r, f, 1 - k, errno);
      }
      d->off += (size_t)w;
      d->bytes += (uint64_t)w;
      if (d->off < d->len) {
        out->writable = 0;
        return;
      }
      free(d->buf);
      d->buf = NULL;
      d->off = d->len = 0;
    }
    if (!may_read(r, f, k, round)) return;
    /* nothing is held for the other side here; none is read while it takes no bytes, so at most
     * the rest of one partial send is ever held per direction */
    if (!out->writable) return;
    ssize_t n = recv(in->fd, r->scratch, SCRATCH, 0);
    int t = took(r, f, k, n);
    if (t < 0) return;
    if (t == 0) continue;
    /* less than asked: the queue was empty; the next bytes bring a new event. Not the end: a FIN
     * that came with these bytes brings none, so once it has been seen, read on until recv says 0. */
    if (n < SCRATCH && !in->rdhup) in->readable = 0;
    ssize_t w = send(out->fd, r->scratch, (size_t)n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN && errno != EINTR) return fail(r, f, 1 - k, errno);
      w = 0;
    }
    d->bytes += (uint64_t)w;
    if (w < n) {
      out->writable = 0;
      d->buf = malloc((size_t)(n - w));
      if (!d->buf) return fail(r, f, 1 - k, ENOMEM);
      memcpy(d->buf, r->scratch + w, (size_t)(n - w));
      d->off = 0;
      d->len = (size_t)(n - w);
      return;
    }
  }
}

/* ---- native intake (relay thread) ---- */

/*
 * 1 when libs/sniff's ClientHelloReader would give a final answer on these bytes (a complete hello,
 * not TLS, malformed framing, too large), 0 while it would need more: the same header checks, in
 * the same order, so a malformed or oversized hello is handed to JS as soon as JS could refuse it.
 */
static int hello_final(const unsigned char *b, size_t n) {
  size_t pos = 0, hs_fill = 0, body_len = 0, body_fill = 0;
  unsigned char hh[4];
  int have_body = 0;
  while (pos < n) {
    if (n - pos < 5) {
      if (b[pos] != 0x16) return 1;
      if (n - pos > 1 && b[pos + 1] != 0x03) return 1;
      if (n - pos > 2 && b[pos + 2] > 0x04) return 1;
      return 0;
    }
    if (b[pos] != 0x16 || b[pos + 1] != 0x03 || b[pos + 2] > 0x04) return 1;
    size_t len = ((size_t)b[pos + 3] << 8) | b[pos + 4];
    size_t at = pos + 5;
    if (len == 0 || len > MAX_RECORD_PAYLOAD || at + len > MAX_HELLO) return 1;
    size_t avail = n - at < len ? n - at : len;
    for (size_t k = 0; k < avail;) {
      if (!have_body) {
        unsigned char c = b[at + k++];
        hh[hs_fill++] = c;
        if (hs_fill == 1 && c != 0x01) return 1;
        if (hs_fill == 4) {
          body_len = ((size_t)hh[1] << 16) | ((size_t)hh[2] << 8) | hh[3];
          size_t message = 4 + body_len;
          if (message + 5 * ((message + MAX_RECORD_PAYLOAD - 1) / MAX_RECORD_PAYLOAD) > MAX_HELLO) return 1;
          if (body_len == 0) return 1;
          have_body = 1;
        }
        continue;
      }
      size_t take = avail - k < body_len - body_fill ? avail - k : body_len - body_fill;
      body_fill += take;
      k += take;
      if (body_fill == body_len) return 1;
    }
    if (avail < len) return 0;
    pos = at + len;
  }
  return 0;
}

/* The sniffed bytes go to JS; the flow waits for its verdict (attach or refuse). */
static void hello_out(relay_t *r, flow *f, int how) {
  f->state = ST_WAIT;
  emit(r, f->id, how, 0, EV_HELLO, 0, f->d[0].buf, f->d[0].len);
}

/* ---- the express lane ---- */

static void connect_failed(relay_t *r, flow *f, int err);

static unsigned route_hash(int lidx, int ech, const char *peer, const char *sni, size_t sni_len) {
  return fnv(fnv(2166136261u ^ (uint32_t)(lidx * 2 + ech), peer, strlen(peer)), sni, sni_len) & (ROUTE_BUCKETS - 1);
}

static route **route_slot(relay_t *r, int lidx, int ech, const char *peer, const char *sni, size_t sni_len) {
  route **p = &r->routes[route_hash(lidx, ech, peer, sni, sni_len)];
  for (; *p; p = &(*p)->next) {
    route *rt = *p;
    if (rt->lidx == lidx && rt->ech == ech && rt->sni_len == sni_len && memcmp(rt->sni, sni, sni_len) == 0 && strcmp(rt->peer, peer) == 0) break;
  }
  return p;
}

/* A new route replaces the one with its key; past MAX_ROUTES, it is not kept. */
static void route_put(relay_t *r, route *rt) {
  route **p = route_slot(r, rt->lidx, rt->ech, rt->peer, rt->sni, rt->sni_len);
  if (*p) {
    route *old = *p;
    rt->next = old->next;
    *p = rt;
    free(old);
    return;
  }
  if (r->nroutes >= MAX_ROUTES) {
    free(rt);
    return;
  }
  rt->next = NULL;
  *p = rt;
  r->nroutes++;
}

static void routes_clear(relay_t *r) {
  for (int b = 0; b < ROUTE_BUCKETS; b++) {
    while (r->routes[b]) {
      route *rt = r->routes[b];
      r->routes[b] = rt->next;
      free(rt);
    }
  }
  r->nroutes = 0;
}

/* A non-blocking connect for f's upstream with a deadline; a failure at once is reported as one
 * after the deadline would be (EV_CONNECTED, failed) and the flow waits for JS's refusal. */
static void start_connect(relay_t *r, flow *f, const struct sockaddr *sa, socklen_t salen, int timeout, int idle, int64_t now) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int err = fd < 0 ? errno : 0;
  f->idle_ms = idle;
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, sa, salen) != 0 && errno != EINPROGRESS) err = errno;
  }
  if (timeout <= 0) timeout = 10000;
  if (timeout < r->min_deadline_ms) __atomic_store_n(&r->min_deadline_ms, timeout, __ATOMIC_RELAXED);
  if (err) {
    if (fd >= 0) close(fd);
    f->state = ST_WAIT;
    emit(r, f->id, 0, 0, EV_CONNECTED, err, NULL, 0);
    return;
  }
  f->s[1].fd = fd;
  f->s[1].owned = 1;
  f->state = ST_CONNECTING;
  f->deadline = now + timeout;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = &f->s[1]};
  if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) != 0) return connect_failed(r, f, errno);
  f->s[1].registered = 1;
}

/* A complete hello: a route for it connects at once (JS hears EV_EXPRESS, then EV_CONNECTED as
 * after its own connect); otherwise the bytes go to JS. */
static void hello_done(relay_t *r, flow *f) {
  int max_flows = __atomic_load_n(&r->max_flows, __ATOMIC_RELAXED), per_source = __atomic_load_n(&r->max_per_source, __ATOMIC_RELAXED);
  if (r->nroutes > 0 && f->src && max_flows > 0 && under(r->intake_open, max_flows) && under(f->src->count, per_source)) {
    char name[256];
    int ech = 0;
    size_t len = hello_sni((const unsigned char *)f->d[0].buf, f->d[0].len, name, &ech);
    route *rt = len ? *route_slot(r, f->lidx, ech, f->peer, name, len) : NULL;
    int64_t now = now_ms();
    if (rt && now < rt->expires) {
      emit(r, f->id, rt->rid, 0, EV_EXPRESS, 0, NULL, 0);
      return start_connect(r, f, (const struct sockaddr *)&rt->sa, rt->salen, rt->timeout_ms, rt->idle_ms, now);
    }
  }
  hello_out(r, f, H_COMPLETE);
}

static void sniff_read(relay_t *r, flow *f) {
  dir *d = &f->d[0];
  for (;;) {
    if (d->len == f->cap) {
      size_t cap = f->cap * 2 > MAX_HELLO ? MAX_HELLO : f->cap * 2;
      if (cap <= f->cap) return hello_out(r, f, H_FULL);
      char *grown = realloc(d->buf, cap);
      if (!grown) return fail(r, f, 0, ENOMEM);
      d->buf = grown;
      f->cap = cap;
    }
    size_t want = f->cap - d->len;
    ssize_t n = recv(f->s[0].fd, d->buf + d->len, want, 0);
    if (n > 0) {
      d->len += (size_t)n;
      /* a short read emptied the queue: the next bytes bring a new event (edge-triggered), unless
       * the FIN already came (it brings none): then read on to the end. The relay starts from
       * this readiness, without a read to find out. */
      f->s[0].readable = (size_t)n == want || f->s[0].rdhup;
      if (hello_final((const unsigned char *)d->buf, d->len)) return hello_done(r, f);
      if (!f->s[0].readable) return;
      continue;
    }
    if (n == 0) {
      d->eof = 1;
      if (!f->reason) f->reason = R_CLIENT_CLOSED;
      return hello_out(r, f, H_CLOSED);
    }
    if (errno == EAGAIN || errno == EINTR) {
      f->s[0].readable = 0;
      return;
    }
    int err = errno;
    hello_out(r, f, H_CLOSED);
    return fail(r, f, 0, err);
  }
}

/* A refused client: whatever it still sends is read and dropped until it closes. */
static void linger_read(relay_t *r, flow *f) {
  for (;;) {
    ssize_t n = recv(f->s[0].fd, r->scratch, SCRATCH, 0);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    return finish(r, f, R_NONE, 0);
  }
}

static int peer_text(const struct sockaddr_storage *ss, char *out, size_t size) {
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)size);
    return ntohs(a->sin6_port);
  }
  const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
  inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)size);
  return ntohs(a->sin_port);
}

static void pause_listener(relay_t *r, lsn *l, int64_t now) {
  epoll_ctl(r->ep, EPOLL_CTL_DEL, l->fd, NULL);
  l->paused = 1;
  l->resume_at = now + 50;
}

static void on_accept(relay_t *r, lsn *l, int64_t now) {
  char addr[INET6_ADDRSTRLEN];
  for (int k = 0; k < 64 && l->open && !l->paused; k++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED) continue;
      if ((err == EMFILE || err == ENFILE) && r->spare_fd >= 0) {
        /* out of descriptors: the spare one takes the connection, which is audited and closed */
        close(r->spare_fd);
        sl = sizeof(ss);
        fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (fd >= 0) {
          int port = peer_text(&ss, addr, sizeof(addr));
          emit(r, 0, l->idx, port, EV_FD_LIMIT, err, addr, strlen(addr));
          close(fd);
        }
        r->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        continue;
      }
      /* the listener stays readable: a short pause instead of a busy loop */
      emit(r, 0, l->idx, 0, EV_ACCEPT_ERROR, err, NULL, 0);
      return pause_listener(r, l, now);
    }
    /* TCP_NODELAY: inherited from the listening socket */
    flow *f = calloc(1, sizeof(flow));
    char *buf = malloc(4096);
    int port = peer_text(&ss, addr, sizeof(addr));
    r->next_cid -= 1;
    if (!f || !buf) {
      free(f);
      free(buf);
      close(fd);
      emit(r, 0, l->idx, port, EV_FD_LIMIT, ENOMEM, addr, strlen(addr));
      continue;
    }
    f->id = r->next_cid;
    f->state = ST_SNIFF;
    f->lidx = l->idx;
    memcpy(f->peer, addr, sizeof(addr));
    f->src = source_open(r, addr);
    f->deadline = now + l->sniff_ms;
    f->d[0].buf = buf;
    f->cap = 4096;
    f->s[0].fd = fd;
    f->s[0].owned = 1;
    f->s[1].fd = -1;
    for (int i = 0; i < 2; i++) {
      f->s[i].f = f;
      f->s[i].i = i;
    }
    f->next = r->head;
    if (r->head) r->head->prev = f;
    r->head = f;
    flow **b = bucket(r, f->id);
    f->hnext = *b;
    *b = f;
    emit(r, f->id, l->idx, port, EV_ACCEPTED, 0, addr, strlen(addr));
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = &f->s[0]};
    if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      fail(r, f, 0, errno);
      continue;
    }
    f->s[0].registered = 1;
    /* the hello is often there already: read it now rather than after another epoll round */
    sniff_read(r, f);
  }
}

static void connect_done(relay_t *r, flow *f, uint32_t events, int64_t now);

static void on_event(relay_t *r, side *s, uint32_t events, int64_t now) {
  if (s->i == 2) return on_accept(r, (lsn *)s, now);
  flow *f = s->f;
  int i = s->i;
  if (f->dead) return;
  if (f->state == ST_LINGER) return linger_read(r, f);
  if (f->state == ST_CONNECTING && i == 1) return connect_done(r, f, events, now);
  if (f->state == ST_SNIFF && !(events & EPOLLERR)) {
    if (events & (EPOLLRDHUP | EPOLLHUP)) s->rdhup = 1;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) sniff_read(r, f);
    return;
  }
  f->last = now;
  if (events & EPOLLERR) {
    /* a reset or a failed send: the connection is gone, and with it whatever was pending */
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) err = EPIPE;
    if (f->state == ST_SNIFF) hello_out(r, f, H_CLOSED);
    return fail(r, f, i, err);
  }
  if (events & (EPOLLRDHUP | EPOLLHUP)) s->rdhup = 1;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) s->readable = 1;
  if (events & (EPOLLOUT | EPOLLHUP)) s->writable = 1;
  if (f->state == ST_WAIT || f->state == ST_CONNECTING) return; /* JS is deciding: the readiness is kept for the relay */
  pump(r, f, i);
  if (!f->dead) pump(r, f, 1 - i);
}

/* Flows that stopped at their fair share go on where they stopped. */
static void run_again(relay_t *r) {
  flow *list = r->again;
  r->again = NULL;
  while (list) {
    flow *f = list;
    list = f->again;
    f->queued = 0;
    if (f->dead) continue;
    pump(r, f, 0);
    if (!f->dead) pump(r, f, 1);
  }
}

static void adopt_incoming(relay_t *r, flow *list, int64_t now) {
  while (list) {
    flow *f = list;
    list = f->next;
    f->prev = NULL;
    f->next = r->head;
    if (r->head) r->head->prev = f;
    r->head = f;
    f->last = now;
    if (f->idle_ms > 0 && (r->min_idle_ms == 0 || f->idle_ms < r->min_idle_ms)) r->min_idle_ms = f->idle_ms;
    /* registered once, edge-triggered: a socket already readable or writable reports it at once */
    for (int i = 0; i < 2 && !f->dead; i++) {
      struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = &f->s[i]};
      if (epoll_ctl(r->ep, EPOLL_CTL_ADD, f->s[i].fd, &ev) != 0) fail(r, f, i, errno);
      else f->s[i].registered = 1;
    }
  }
}

/* The upstream is connected (attach, or the thread's own connect): the sniffed bytes go first. */
static void begin_relay(relay_t *r, flow *f, int64_t now) {
  if (f->idle_ms > 0 && (r->min_idle_ms == 0 || f->idle_ms < r->min_idle_ms)) r->min_idle_ms = f->idle_ms;
  if (f->d[0].len == 0) {
    free(f->d[0].buf);
    f->d[0].buf = NULL;
  }
  f->state = ST_RELAY;
  f->last = now;
  /* the client's readiness: as the sniff's last read left it, and events since (a full read may
   * have left bytes; a short one emptied the queue, and what came after brought an event) */
  f->s[0].writable = 1;
  f->s[1].writable = 1;
  pump(r, f, 0);
  if (!f->dead) pump(r, f, 1);
}

/* A connect that failed or timed out: the upstream socket goes, the flow waits for JS's refusal. */
/* The upstream socket of a flow not yet relaying (a failed connect, a refusal while connecting) goes. */
static void drop_upstream(relay_t *r, flow *f) {
  if (f->s[1].fd < 0) return;
  if (f->s[1].registered && !f->s[1].owned) epoll_ctl(r->ep, EPOLL_CTL_DEL, f->s[1].fd, NULL);
  close(f->s[1].fd);
  f->s[1].fd = -1;
  f->s[1].registered = 0;
  f->s[1].owned = 0;
  f->s[1].readable = f->s[1].writable = f->s[1].rdhup = 0;
}

static void connect_failed(relay_t *r, flow *f, int err) {
  drop_upstream(r, f);
  f->state = ST_WAIT;
  emit(r, f->id, 0, 0, EV_CONNECTED, err, NULL, 0);
}

static void connect_done(relay_t *r, flow *f, uint32_t events, int64_t now) {
  int err = 0;
  socklen_t len = sizeof(err);
  /* writable with no error or hang-up: connected; otherwise the socket says how it failed */
  if (!(events & EPOLLOUT) || (events & (EPOLLERR | EPOLLHUP)))
    if (getsockopt(f->s[1].fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == 0 && !(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
  if (err == 0 && (events & (EPOLLERR | EPOLLHUP))) err = ECONNREFUSED;
  if (err) return connect_failed(r, f, err);
  emit(r, f->id, 1, 0, EV_CONNECTED, 0, NULL, 0);
  if (events & (EPOLLIN | EPOLLRDHUP)) f->s[1].readable = 1;
  if (events & EPOLLRDHUP) f->s[1].rdhup = 1;
  begin_relay(r, f, now);
}

/* JS's verdicts on accepted connections, and listeners to close, in the order they were given. */
static void run_commands(relay_t *r, cmd *list, int64_t now) {
  cmd *rev = NULL;
  while (list) {
    cmd *c = list;
    list = c->next;
    c->next = rev;
    rev = c;
  }
  while (rev) {
    cmd *c = rev;
    rev = c->next;
    if (c->type == C_UNLISTEN) {
      lsn *l = &r->listeners[c->idle];
      if (l->open) {
        if (!l->paused) epoll_ctl(r->ep, EPOLL_CTL_DEL, l->fd, NULL);
        close(l->fd);
        /* its slot may be another listener's next: no route of this one may outlive it */
        routes_clear(r);
        __atomic_store_n(&l->open, 0, __ATOMIC_RELEASE); /* the slot is free for listen() again */
      }
      free(c);
      continue;
    }
    if (c->type == C_ROUTE) {
      route_put(r, (route *)c->buf);
      free(c);
      continue;
    }
    if (c->type == C_ROUTES_CLEAR) {
      routes_clear(r);
      free(c);
      continue;
    }
    flow *f = lookup(r, c->id);
    if (f && !f->dead && c->type == C_REFUSE && f->state == ST_RELAY) {
      /* an express flow JS refused (over a connection limit) after its upstream answered: closed */
      finish(r, f, R_NONE, 0);
      free(c->buf);
      free(c);
      continue;
    }
    if (!f || f->dead || f->state == ST_RELAY || f->state == ST_LINGER || (c->type != C_REFUSE && f->state != ST_WAIT)) {
      /* gone already (its end record is on its way) or refused twice: nothing to do */
      if (c->fd >= 0) close(c->fd);
      free(c->buf);
      free(c);
      continue;
    }
    if (c->type == C_CONNECT) {
      start_connect(r, f, (const struct sockaddr *)&c->sa, c->salen, c->timeout, c->idle, now);
      free(c);
      continue;
    }
    if (c->type == C_REFUSE) {
      drop_upstream(r, f);
      if (!(c->flags & 1)) {
        finish(r, f, R_NONE, 0);
      } else {
        if (c->len) {
          ssize_t ignored = send(f->s[0].fd, c->buf, c->len, MSG_NOSIGNAL | MSG_DONTWAIT);
          (void)ignored;
        }
        shutdown(f->s[0].fd, SHUT_WR);
        free(f->d[0].buf);
        f->d[0].buf = NULL;
        f->d[0].len = f->d[0].off = 0;
        f->state = ST_LINGER;
        f->deadline = now + LINGER_MS;
        linger_read(r, f);
      }
      free(c->buf);
      free(c);
      continue;
    }
    /* C_ATTACH: the sniffed bytes are d[0]'s pending bytes; the upstream's first bytes d[1]'s */
    f->s[1].fd = c->fd;
    f->d[1].buf = c->buf;
    f->d[1].len = c->len;
    f->d[1].eof = (c->flags & 2) != 0;
    f->idle_ms = c->idle;
    free(c);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = &f->s[1]};
    if (epoll_ctl(r->ep, EPOLL_CTL_ADD, f->s[1].fd, &ev) != 0) {
      fail(r, f, 1, errno);
      continue;
    }
    f->s[1].registered = 1;
    begin_relay(r, f, now);
  }
}

static void kill_all(relay_t *r, int reason) {
  while (r->head) finish(r, r->head, reason, 0);
}

/* How often the sweep checks deadlines: a tenth of the shortest idle, sniff, connect or linger
 * deadline (25 ms – 1 s); 25 ms while a listener is paused. */
static int sweep_step(relay_t *r) {
  int base = r->min_idle_ms;
  int deadlines = __atomic_load_n(&r->min_deadline_ms, __ATOMIC_RELAXED);
  if (deadlines > 0 && (base == 0 || deadlines < base)) base = deadlines;
  int step = base > 0 ? base / 10 : 1000;
  if (step < 25) step = 25;
  if (step > 1000) step = 1000;
  for (int l = 0; l < MAX_LISTENERS; l++)
    if (r->listeners[l].open && r->listeners[l].paused) step = 25;
  return step;
}

static void sweep(relay_t *r, int64_t now) {
  r->last_sweep = now;
  for (flow *f = r->head, *next; f; f = next) {
    next = f->next;
    if (f->state == ST_SNIFF) {
      if (now >= f->deadline) hello_out(r, f, H_TIMEOUT);
    } else if (f->state == ST_LINGER) {
      if (now >= f->deadline) finish(r, f, R_NONE, 0);
    } else if (f->state == ST_CONNECTING) {
      if (now >= f->deadline) connect_failed(r, f, ETIMEDOUT);
    } else if (f->state == ST_RELAY && f->idle_ms > 0 && now - f->last >= f->idle_ms) {
      finish(r, f, R_IDLE, 0);
    }
  }
  for (int l = 0; l < MAX_LISTENERS; l++) {
    lsn *ls = &r->listeners[l];
    if (ls->open && ls->paused && now >= ls->resume_at) {
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &ls->s};
      if (epoll_ctl(r->ep, EPOLL_CTL_ADD, ls->fd, &ev) == 0) ls->paused = 0;
      else ls->resume_at = now + 50;
    }
  }
}

/* Frees the flows that ended in this round; a dead flow still on the again list waits until
 * run_again has taken it off. */
static void bury(relay_t *r) {
  flow *keep = NULL;
  while (r->graveyard) {
    flow *f = r->graveyard;
    r->graveyard = f->next;
    if (f->queued) {
      f->next = keep;
      keep = f;
    } else free(f);
  }
  r->graveyard = keep;
}

/* 1: the records queued for JS go now. Else *wait_ms: how long they may still wait (0: none
 * queued, or a hand-over is already pending). */
static int due(relay_t *r, int64_t now, int stop, int *wait_ms) {
  pthread_mutex_lock(&r->mu);
  int notify = r->done_len > 0 && !r->notify_pending && !stop && (r->urgent || now - r->oldest >= NOTIFY_WITHIN_MS);
  if (notify) r->notify_pending = 1;
  int waiting = r->done_len > 0 && !notify && !r->notify_pending;
  int64_t left = r->oldest + NOTIFY_WITHIN_MS - now;
  pthread_mutex_unlock(&r->mu);
  *wait_ms = !waiting ? 0 : left < 1 ? 1 : left > NOTIFY_WITHIN_MS ? NOTIFY_WITHIN_MS : (int)left;
  return notify;
}

static void *run(void *arg) {
  relay_t *r = arg;
  struct epoll_event evs[MAX_EVENTS];
  r->last_sweep = now_ms();
  /* records held for JS (not urgent): wake up in time to hand them over */
  int wait_ms = 0;
  for (;;) {
    int step = sweep_step(r);
    int timeout = r->again ? 0 : wait_ms > 0 && wait_ms < step ? wait_ms : step;
    /* work given while this thread was busy came without a wake-up: take it in this round */
    __atomic_store_n(&r->sleeping, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&r->mu);
    int pending = r->cmds != NULL || r->incoming != NULL;
    pthread_mutex_unlock(&r->mu);
    if (pending) wake(r);
    int n = epoll_wait(r->ep, evs, MAX_EVENTS, timeout);
    __atomic_store_n(&r->sleeping, 0, __ATOMIC_SEQ_CST);
    int64_t now = now_ms();
    int stop = 0;
    for (int e = 0; e < n; e++) {
      if (evs[e].data.ptr == NULL) {
        uint64_t v;
        ssize_t ignored = read(r->evfd, &v, sizeof(v));
        (void)ignored;
        pthread_mutex_lock(&r->mu);
        flow *list = r->incoming;
        r->incoming = NULL;
        cmd *cmds = r->cmds;
        r->cmds = NULL;
        int kill = r->kill_reason;
        r->kill_reason = 0;
        stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        adopt_incoming(r, list, now);
        run_commands(r, cmds, now);
        if (kill) kill_all(r, kill);
        continue;
      }
      on_event(r, evs[e].data.ptr, evs[e].events, now);
    }
    run_again(r);
    if (now - r->last_sweep >= step) sweep(r, now);
    bury(r);
    int notify = due(r, now, stop, &wait_ms);
    if (notify) napi_call_threadsafe_function(r->tsfn, NULL, napi_tsfn_nonblocking);
    if (stop) {
      kill_all(r, R_SHUTDOWN);
      while (r->graveyard) {
        flow *f = r->graveyard;
        r->graveyard = f->next;
        free(f);
      }
      return NULL;
    }
  }
}

/* ---- main thread ---- */

/* The process stays alive while the relay holds a listener or an adopted flow, as with Node's own
 * handles: the thread-safe function (thread mode) or the poll handle (inline mode) is referenced. */
static void keep_alive(napi_env env, relay_t *r, int64_t delta) {
  int64_t before = r->active;
  r->active += delta;
  if (r->active < 0) r->active = 0;
  if (before == 0 && r->active > 0) {
    if (r->inline_mode) uv_ref((uv_handle_t *)r->prepare);
    else napi_ref_threadsafe_function(env, r->tsfn);
  } else if (before > 0 && r->active == 0) {
    if (r->inline_mode) uv_unref((uv_handle_t *)r->prepare);
    else napi_unref_threadsafe_function(env, r->tsfn);
  }
}

/* Hands the queued records to cb: from the thread-safe function (thread mode; Node has opened the
 * scopes) or from a loop callback (inline mode, as a MakeCallback: microtasks run after it). */
static void hand_over(napi_env env, relay_t *r, napi_value cb) {
  pthread_mutex_lock(&r->mu);
  double *done = r->done;
  char *pay = r->pay;
  size_t len = r->done_len, pay_len = r->pay_len;
  r->done = NULL;
  r->pay = NULL;
  r->done_len = r->done_cap = r->pay_len = r->pay_cap = 0;
  r->notify_pending = 0;
  r->urgent = 0;
  pthread_mutex_unlock(&r->mu);
  size_t records = len / RECORD;
  napi_value ab, argv[2], global;
  void *bytes;
  if (len && napi_create_arraybuffer(env, len * sizeof(double), &bytes, &ab) == napi_ok) {
    memcpy(bytes, done, len * sizeof(double));
    napi_create_typedarray(env, napi_float64_array, len, ab, 0, &argv[0]);
    /* every payload (an address, a hello) in one buffer, by offset and length; undefined: none */
    void *copy;
    if (!pay_len || napi_create_buffer_copy(env, pay_len, pay, &copy, &argv[1]) != napi_ok) napi_get_undefined(env, &argv[1]);
    int64_t ended = 0;
    /* the flows adopt() took keep the process alive until they end */
    for (size_t i = 0; i < records; i++)
      if (done[i * RECORD] > 0 && done[i * RECORD + 3] < EV_ACCEPTED) ended++;
    if (ended) keep_alive(env, r, -ended);
    napi_get_global(env, &global);
    if (r->inline_mode) {
      if (napi_make_callback(env, r->async_ctx, global, cb, 2, argv, NULL) == napi_pending_exception) {
        napi_value err;
        if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
      }
    } else {
      napi_call_function(env, global, cb, 2, argv, NULL);
    }
  }
  free(pay);
  free(done);
}

static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)data;
  if (env) hand_over(env, context, cb);
}

/* ---- inline mode: the same relay, driven by Node's loop ---- */

/*
 * Inline mode sleeps in the relay's own epoll_wait, not in Node's: Node's epoll descriptor is one
 * more entry in the relay's set (level-triggered, `loop_mark`), watched from a prepare handle,
 * which runs just before Node's loop would poll. It waits as long as Node's loop would have
 * (uv_backend_timeout: timers, pending work, setImmediate) and no longer than the relay's own
 * deadlines; an idle handle then keeps Node's poll that follows from sleeping again (it only
 * takes the events that woke us). The other way round, the relay's descriptor watched by Node's
 * epoll (uv_poll), every socket event went through two epoll sets and two waits: on the
 * connections benchmark, ~40 ms more kernel time per 1,000 connections than the relay on its own
 * thread. One cost: Node's event-loop utilisation reads as fully busy, since Node's loop no
 * longer sleeps in its own poll.
 */

static void on_idle(uv_idle_t *h) { (void)h; }

/* How long the relay may sleep: 0 if flows stopped at their fair share or JS should have records
 * now; else until the next sweep or until held records are due. */
static int inline_wait_ms(relay_t *r, int64_t now) {
  if (r->again) return 0;
  pthread_mutex_lock(&r->mu);
  int held = r->done_len > 0 && !r->notify_pending;
  int urgent = held && r->urgent;
  int64_t oldest = r->oldest;
  pthread_mutex_unlock(&r->mu);
  if (urgent) return 0;
  int64_t t = r->last_sweep + sweep_step(r) - now;
  if (held && oldest + NOTIFY_WITHIN_MS - now < t) t = oldest + NOTIFY_WITHIN_MS - now;
  return t < 0 ? 0 : (int)t;
}

static void deliver(relay_t *r) {
  napi_handle_scope scope;
  napi_value cb = NULL;
  if (napi_open_handle_scope(r->env, &scope) != napi_ok) return;
  if (napi_get_reference_value(r->env, r->cb_ref, &cb) == napi_ok && cb) hand_over(r->env, r, cb);
  napi_close_handle_scope(r->env, scope);
}

static void on_prepare(uv_prepare_t *h) {
  relay_t *r = h->data;
  uv_loop_t *loop = h->loop;
  struct epoll_event evs[MAX_EVENTS];
  uv_idle_stop(r->idle);
  int64_t now = now_ms();
  int timeout = inline_wait_ms(r, now);
  if (timeout > 0) {
    /* what Node's loop would wait: 0 with work pending, immediates, closing handles, or watchers
     * started since its last poll (not in its epoll set until it polls: libuv 1.46 checks its
     * watcher queue here); else until its next timer, -1 none */
    uv_update_time(loop);
    int node_ms = uv_backend_timeout(loop);
    if (node_ms >= 0 && node_ms < timeout) timeout = node_ms;
  }
  int n = epoll_wait(r->ep, evs, MAX_EVENTS, timeout);
  now = now_ms();
  for (int e = 0; e < n; e++)
    if (evs[e].data.ptr != &r->loop_mark) on_event(r, evs[e].data.ptr, evs[e].events, now);
  run_again(r);
  if (now - r->last_sweep >= sweep_step(r)) sweep(r, now);
  bury(r);
  int wait_ms;
  if (due(r, now, 0, &wait_ms)) deliver(r);
  /* Node's poll now: no wait, whatever it would have waited (we did) */
  uv_idle_start(r->idle, on_idle);
}

static void close_free(uv_handle_t *h) { free(h); }

static void cleanup(void *arg) {
  relay_t *r = arg;
  if (r->inline_mode) {
    uv_close((uv_handle_t *)r->prepare, close_free);
    uv_close((uv_handle_t *)r->idle, close_free);
    kill_all(r, R_SHUTDOWN);
    bury(r);
  } else if (r->started) {
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_mutex_unlock(&r->mu);
    wake(r);
    pthread_join(r->thread, NULL);
    napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
  }
  for (flow *f = r->incoming, *next; f; f = next) {
    next = f->next;
    for (int i = 0; i < 2; i++) {
      close(f->s[i].fd);
      free(f->d[i].buf);
    }
    free(f);
  }
  for (cmd *c = r->cmds, *next; c; c = next) {
    next = c->next;
    if (c->fd >= 0) close(c->fd);
    free(c->buf);
    free(c);
  }
  for (int l = 0; l < MAX_LISTENERS; l++)
    if (r->listeners[l].open) close(r->listeners[l].fd);
  routes_clear(r);
  for (int b = 0; b < SOURCE_BUCKETS; b++)
    while (r->sources[b]) {
      source *src = r->sources[b];
      r->sources[b] = src->next;
      free(src);
    }
  if (r->spare_fd >= 0) close(r->spare_fd);
  if (r->ep >= 0) close(r->ep);
  if (r->evfd >= 0) close(r->evfd);
  free(r->pay);
  free(r->done);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static relay_t *state(napi_env env) {
  void *data = NULL;
  napi_get_instance_data(env, &data);
  return data;
}

static napi_value throw_error(napi_env env, const char *msg) {
  napi_throw_error(env, "PORTCULLIS_RELAY", msg);
  return NULL;
}

/* start(cb, threaded = true) */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], name;
  relay_t *r = state(env);
  bool threaded = true;
  if (r->started) return throw_error(env, "relay already started");
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return throw_error(env, "start(callback, threaded)");
  if (argc >= 2) napi_get_value_bool(env, argv[1], &threaded);
  napi_create_string_utf8(env, "portcullis.relay", NAPI_AUTO_LENGTH, &name);
  r->last_sweep = now_ms();
  if (!threaded) {
    uv_loop_t *loop = NULL;
    napi_value resource;
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    if (r->ep < 0) return throw_error(env, "epoll failed");
    napi_create_object(env, &resource);
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || napi_create_reference(env, argv[0], 1, &r->cb_ref) != napi_ok ||
        napi_async_init(env, resource, name, &r->async_ctx) != napi_ok)
      return throw_error(env, "could not set up the relay's callback");
    /* Node's own epoll descriptor, in the relay's set: its events wake the relay's wait */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &r->loop_mark};
    int node_fd = uv_backend_fd(loop);
    if (node_fd < 0 || epoll_ctl(r->ep, EPOLL_CTL_ADD, node_fd, &ev) != 0) return throw_error(env, "could not watch Node's epoll descriptor");
    r->prepare = malloc(sizeof(uv_prepare_t));
    r->idle = malloc(sizeof(uv_idle_t));
    if (!r->prepare || !r->idle) return throw_error(env, "out of memory");
    uv_prepare_init(loop, r->prepare);
    uv_idle_init(loop, r->idle);
    r->prepare->data = r->idle->data = r;
    uv_prepare_start(r->prepare, on_prepare);
    /* the prepare handle keeps the process alive while the relay holds something (keep_alive) */
    uv_unref((uv_handle_t *)r->prepare);
    uv_unref((uv_handle_t *)r->idle);
    r->env = env;
    r->inline_mode = 1;
    r->started = 1;
    return NULL;
  }
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, r, call_js, &r->tsfn) != napi_ok) return throw_error(env, "could not create the relay's callback");
  napi_unref_threadsafe_function(env, r->tsfn);
  r->ep = epoll_create1(EPOLL_CLOEXEC);
  r->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (r->ep < 0 || r->evfd < 0) return throw_error(env, "epoll/eventfd failed");
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(r->ep, EPOLL_CTL_ADD, r->evfd, &ev);
  if (pthread_create(&r->thread, NULL, run, r) != 0) return throw_error(env, "could not start the relay thread");
  r->started = 1;
  return NULL;
}

static int copy_first(napi_env env, napi_value v, dir *d) {
  bool is_buffer = false;
  if (napi_is_buffer(env, v, &is_buffer) != napi_ok || !is_buffer) return 1;
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) return 0;
  if (len == 0) return 1;
  d->buf = malloc(len);
  if (!d->buf) return 0;
  memcpy(d->buf, data, len);
  d->len = len;
  return 1;
}

static napi_value js_adopt(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7], result;
  relay_t *r = state(env);
  int32_t cfd, ufd, idle, flags;
  double id;
  if (!r->started) return throw_error(env, "relay not started");
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 7 || napi_get_value_int32(env, argv[0], &cfd) != napi_ok ||
      napi_get_value_int32(env, argv[1], &ufd) != napi_ok || napi_get_value_double(env, argv[2], &id) != napi_ok || napi_get_value_int32(env, argv[3], &idle) != napi_ok ||
      napi_get_value_int32(env, argv[6], &flags) != napi_ok)
    return throw_error(env, "adopt(clientFd, upstreamFd, id, idleMs, upFirst, downFirst, flags)");
  flow *f = calloc(1, sizeof(flow));
  if (!f) goto refuse;
  f->id = id;
  f->idle_ms = idle;
  f->d[0].eof = (flags & 1) != 0;
  f->d[1].eof = (flags & 2) != 0;
  if (!copy_first(env, argv[4], &f->d[0]) || !copy_first(env, argv[5], &f->d[1])) goto refuse_free;
  f->s[0].fd = fcntl(cfd, F_DUPFD_CLOEXEC, 0);
  if (f->s[0].fd < 0) goto refuse_free;
  f->s[1].fd = fcntl(ufd, F_DUPFD_CLOEXEC, 0);
  if (f->s[1].fd < 0) {
    close(f->s[0].fd);
    goto refuse_free;
  }
  for (int i = 0; i < 2; i++) {
    f->s[i].f = f;
    f->s[i].i = i;
  }
  keep_alive(env, r, 1);
  if (r->inline_mode) {
    int64_t now = now_ms();
    f->next = NULL;
    adopt_incoming(r, f, now);
  } else {
    pthread_mutex_lock(&r->mu);
    f->next = r->incoming;
    r->incoming = f;
    pthread_mutex_unlock(&r->mu);
    nudge(r);
  }
  napi_get_boolean(env, true, &result);
  return result;
refuse_free:
  free(f->d[0].buf);
  free(f->d[1].buf);
  free(f);
refuse:
  napi_get_boolean(env, false, &result);
  return result;
}

static napi_value js_kill_all(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t reason = R_SHUTDOWN;
  relay_t *r = state(env);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= 1) napi_get_value_int32(env, argv[0], &reason);
  if (!r->started) return NULL;
  if (r->inline_mode) {
    kill_all(r, reason);
    return NULL;
  }
  pthread_mutex_lock(&r->mu);
  r->kill_reason = reason;
  pthread_mutex_unlock(&r->mu);
  wake(r);
  return NULL;
}

/* Thread mode: queued for the thread. Inline mode: done now, inside the JS call that gave it (it
 * never calls JS: records it makes go out from the loop). */
static void push_cmd(relay_t *r, cmd *c) {
  if (r->inline_mode) {
    int64_t now = now_ms();
    c->next = NULL;
    run_commands(r, c, now);
    return;
  }
  pthread_mutex_lock(&r->mu);
  c->next = r->cmds;
  r->cmds = c;
  pthread_mutex_unlock(&r->mu);
  nudge(r);
}

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char msg[512];
  const char *name = strerrorname_np(err);
  snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
  napi_throw_error(env, name ? name : "PORTCULLIS_RELAY", msg);
  return NULL;
}

/* A listening TCP socket on host:port (port 0: any free one), non-blocking and close-on-exec;
 * accepted sockets inherit TCP_NODELAY from it. Throws (and answers -1) as Node's listen() would. */
static int open_listener(napi_env env, const char *host, int port, int backlog) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
  char service[16];
  snprintf(service, sizeof(service), "%d", port);
  int gai = getaddrinfo(host[0] ? host : NULL, service, &hints, &res);
  if (gai != 0 || !res) {
    char msg[300];
    snprintf(msg, sizeof(msg), "listen %s: %s", host, gai_strerror(gai));
    napi_throw_error(env, "ENOTFOUND", msg);
    return -1;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int err = 0;
  if (fd < 0) err = errno;
  else {
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* accepted sockets inherit it */
    if (res->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)); /* as Node: "::" takes IPv4 too */
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, backlog) != 0) err = errno;
  }
  freeaddrinfo(res);
  if (err) {
    if (fd >= 0) close(fd);
    char what[300];
    snprintf(what, sizeof(what), "listen %s:%d", host, port);
    throw_errno(env, err, what);
    return -1;
  }
  return fd;
}

static int bound_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) return -1;
  return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static napi_value pair(napi_env env, int a, int b) {
  napi_value result, v;
  napi_create_array_with_length(env, 2, &result);
  napi_create_int32(env, a, &v);
  napi_set_element(env, result, 0, v);
  napi_create_int32(env, b, &v);
  napi_set_element(env, result, 1, v);
  return result;
}

/*
 * bindListen(host, port, backlog) -> [fd, port]: a listening socket the caller keeps and passes on
 * (an edge cluster's primary opens one per listener; its workers inherit it and give it to
 * listen()). Needs no started relay; nothing here accepts on it.
 */
static napi_value js_bind_listen(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char host[256];
  size_t hlen;
  int32_t port, backlog;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || napi_get_value_string_utf8(env, argv[0], host, sizeof(host), &hlen) != napi_ok ||
      napi_get_value_int32(env, argv[1], &port) != napi_ok || napi_get_value_int32(env, argv[2], &backlog) != napi_ok)
    return throw_error(env, "bindListen(host, port, backlog)");
  int fd = open_listener(env, host, port, backlog);
  if (fd < 0) return NULL;
  return pair(env, fd, bound_port(fd));
}

/*
 * listen(host, port, backlog, sniffMs[, fd]) -> [listener, port]. With fd (a listening socket
 * from bindListen, inherited from an edge cluster's primary): the relay accepts on a duplicate of
 * it, alongside the other workers, each taking connections from the one shared queue; host and
 * port are then only for messages.
 */
static napi_value js_listen(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  relay_t *r = state(env);
  char host[256];
  size_t hlen;
  int32_t port, backlog, sniff_ms, given = -1;
  if (!r->started) return throw_error(env, "relay not started");
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 || napi_get_value_string_utf8(env, argv[0], host, sizeof(host), &hlen) != napi_ok ||
      napi_get_value_int32(env, argv[1], &port) != napi_ok || napi_get_value_int32(env, argv[2], &backlog) != napi_ok || napi_get_value_int32(env, argv[3], &sniff_ms) != napi_ok ||
      (argc >= 5 && napi_get_value_int32(env, argv[4], &given) != napi_ok))
    return throw_error(env, "listen(host, port, backlog, sniffMs[, fd])");
  int idx = -1;
  for (int l = 0; l < MAX_LISTENERS; l++)
    if (__atomic_load_n(&r->listeners[l].open, __ATOMIC_ACQUIRE) == 0) {
      idx = l;
      break;
    }
  if (idx < 0) return throw_error(env, "too many native listeners");
  int fd;
  if (given >= 0) {
    int type = 0, accepting = 0;
    socklen_t tl = sizeof(type), al = sizeof(accepting);
    if (getsockopt(given, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM || getsockopt(given, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &al) != 0 || !accepting)
      return throw_error(env, "listen: the descriptor given is not a listening TCP socket");
    fd = fcntl(given, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return throw_errno(env, errno, "dup");
    /* the file status flags are shared with every process holding the socket: all want non-blocking accepts */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  } else {
    fd = open_listener(env, host, port, backlog);
    if (fd < 0) return NULL;
  }
  int bound = bound_port(fd);
  if (r->spare_fd < 0) r->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  lsn *l = &r->listeners[idx];
  l->s.i = 2;
  l->s.f = NULL;
  l->idx = idx;
  l->fd = fd;
  l->sniff_ms = sniff_ms;
  l->paused = 0;
  __atomic_store_n(&l->open, 1, __ATOMIC_RELEASE);
  pthread_mutex_lock(&r->mu);
  int shortest = sniff_ms > 0 && sniff_ms < LINGER_MS ? sniff_ms : LINGER_MS;
  if (r->min_deadline_ms == 0 || shortest < r->min_deadline_ms) __atomic_store_n(&r->min_deadline_ms, shortest, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&r->mu);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->s};
  if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
    int err = errno;
    l->open = 0;
    close(fd);
    return throw_errno(env, err, "epoll_ctl");
  }
  /* an open listener keeps the process alive, as a net.Server does */
  keep_alive(env, r, 1);
  return pair(env, idx, bound);
}

static napi_value js_unlisten(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t idx;
  relay_t *r = state(env);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &idx) != napi_ok || idx < 0 || idx >= MAX_LISTENERS)
    return throw_error(env, "unlisten(listener)");
  cmd *c = calloc(1, sizeof(cmd));
  if (!c) return throw_error(env, "out of memory");
  if (__atomic_load_n(&r->listeners[idx].open, __ATOMIC_ACQUIRE) != 1) {
    free(c);
    return NULL;
  }
  __atomic_store_n(&r->listeners[idx].open, 2, __ATOMIC_RELEASE);
  c->type = C_UNLISTEN;
  c->idle = idx;
  c->fd = -1;
  push_cmd(r, c);
  keep_alive(env, r, -1);
  return NULL;
}

/* refuse(id, reply|null, graceful) */
static napi_value js_refuse(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  double id;
  bool graceful = false;
  relay_t *r = state(env);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || napi_get_value_double(env, argv[0], &id) != napi_ok || napi_get_value_bool(env, argv[2], &graceful) != napi_ok)
    return throw_error(env, "refuse(id, reply, graceful)");
  cmd *c = calloc(1, sizeof(cmd));
  dir d = {0};
  if (!c || !copy_first(env, argv[1], &d)) {
    free(c);
    return throw_error(env, "out of memory");
  }
  c->type = C_REFUSE;
  c->id = id;
  c->fd = -1;
  c->flags = graceful ? 1 : 0;
  c->buf = d.buf;
  c->len = d.len;
  push_cmd(r, c);
  return NULL;
}

/* attach(id, upstreamFd, idleMs, downFirst|null, flags) -> boolean */
static napi_value js_attach(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], result;
  double id;
  int32_t ufd, idle, flags;
  relay_t *r = state(env);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 || napi_get_value_double(env, argv[0], &id) != napi_ok || napi_get_value_int32(env, argv[1], &ufd) != napi_ok ||
      napi_get_value_int32(env, argv[2], &idle) != napi_ok || napi_get_value_int32(env, argv[4], &flags) != napi_ok)
    return throw_error(env, "attach(id, upstreamFd, idleMs, downFirst, flags)");
  cmd *c = calloc(1, sizeof(cmd));
  dir d = {0};
  bool ok = false;
  if (c && copy_first(env, argv[3], &d)) {
    c->fd = fcntl(ufd, F_DUPFD_CLOEXEC, 0);
    if (c->fd >= 0) {
      c->type = C_ATTACH;
      c->id = id;
      c->idle = idle;
      c->flags = flags;
      c->buf = d.buf;
      c->len = d.len;
      push_cmd(r, c);
      ok = true;
    } else {
      free(d.buf);
      free(c);
    }
  } else {
    free(c);
  }
  napi_get_boolean(env, ok, &result);
  return result;
}

/* an IPv4 or IPv6 address and a port as a socket address; 0: not an address, or no such port */
static int socket_address(const char *addr, int port, struct sockaddr_storage *sa, socklen_t *salen) {
  if (port <= 0 || port >= 65536) return 0;
  memset(sa, 0, sizeof(*sa));
  struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
  if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *salen = sizeof(*v4);
    return 1;
  }
  if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    *salen = sizeof(*v6);
    return 1;
  }
  return 0;
}

/*
 * route(listener, peer, sni, ech, address, port, ttlMs, routeId, idleMs, timeoutMs) -> boolean:
 * for ttlMs, a complete hello naming sni (as hello_sni reads it; ech: whether it has an ECH
 * extension) from the client address peer (as record 100 gave it) on that listener connects
 * straight to address:port. false: not an address, or a name too long.
 */
static napi_value js_route(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10], result;
  relay_t *r = state(env);
  int32_t lidx, port, ttl, idle, timeout;
  bool ech = false;
  double rid;
  char addr[INET6_ADDRSTRLEN + 8];
  size_t alen, plen;
  route *rt = calloc(1, sizeof(route));
  if (!rt) return throw_error(env, "out of memory");
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 10 || napi_get_value_int32(env, argv[0], &lidx) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], rt->peer, sizeof(rt->peer), &plen) != napi_ok ||
      napi_get_value_string_utf8(env, argv[2], rt->sni, sizeof(rt->sni), &rt->sni_len) != napi_ok || napi_get_value_bool(env, argv[3], &ech) != napi_ok ||
      napi_get_value_string_utf8(env, argv[4], addr, sizeof(addr), &alen) != napi_ok || napi_get_value_int32(env, argv[5], &port) != napi_ok ||
      napi_get_value_int32(env, argv[6], &ttl) != napi_ok || napi_get_value_double(env, argv[7], &rid) != napi_ok || napi_get_value_int32(env, argv[8], &idle) != napi_ok ||
      napi_get_value_int32(env, argv[9], &timeout) != napi_ok) {
    free(rt);
    return throw_error(env, "route(listener, peer, sni, ech, address, port, ttlMs, routeId, idleMs, timeoutMs)");
  }
  bool ok = r->started && lidx >= 0 && lidx < MAX_LISTENERS && ttl > 0 && rt->sni_len > 0 && rt->sni_len < sizeof(rt->sni) - 1 && plen < sizeof(rt->peer) - 1 &&
            socket_address(addr, port, &rt->sa, &rt->salen);
  if (!ok) {
    free(rt);
  } else {
    rt->lidx = lidx;
    rt->ech = ech ? 1 : 0;
    rt->expires = now_ms() + ttl;
    rt->rid = rid;
    rt->idle_ms = idle;
    rt->timeout_ms = timeout;
    cmd *c = calloc(1, sizeof(cmd));
    if (!c) {
      free(rt);
      return throw_error(env, "out of memory");
    }
    c->type = C_ROUTE;
    c->fd = -1;
    c->buf = (char *)rt;
    push_cmd(r, c);
  }
  napi_get_boolean(env, ok, &result);
  return result;
}

/* expressLimits(maxFlows, maxPerSource): the express lane connects only well under both (JS's
 * edge.maxConnections and maxConnectionsPerSource); 0: not at all (the default) */
static napi_value js_express_limits(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t flows, per_source;
  relay_t *r = state(env);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || napi_get_value_int32(env, argv[0], &flows) != napi_ok || napi_get_value_int32(env, argv[1], &per_source) != napi_ok)
    return throw_error(env, "expressLimits(maxFlows, maxPerSource)");
  __atomic_store_n(&r->max_flows, flows > 0 ? flows : 0, __ATOMIC_RELAXED);
  __atomic_store_n(&r->max_per_source, per_source > 0 ? per_source : 0, __ATOMIC_RELAXED);
  return NULL;
}

/* clearRoutes(): every route goes (a new policy version, the policy watch lost) */
static napi_value js_clear_routes(napi_env env, napi_callback_info info) {
  relay_t *r = state(env);
  if (!r->started) return NULL;
  cmd *c = calloc(1, sizeof(cmd));
  if (!c) return throw_error(env, "out of memory");
  c->type = C_ROUTES_CLEAR;
  c->fd = -1;
  push_cmd(r, c);
  return NULL;
}

/* helloSni(bytes) -> [name, ech] | null: hello_sni on those bytes (for tests) */
static napi_value js_hello_sni(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result, v;
  void *data;
  size_t len;
  char name[256];
  int ech = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok)
    return throw_error(env, "helloSni(bytes)");
  size_t n = hello_sni(data, len, name, &ech);
  if (!n) {
    napi_get_null(env, &result);
    return result;
  }
  napi_create_array_with_length(env, 2, &result);
  napi_create_string_utf8(env, name, n, &v);
  napi_set_element(env, result, 0, v);
  napi_get_boolean(env, ech != 0, &v);
  napi_set_element(env, result, 1, v);
  return result;
}

/* connect(id, address, port, timeoutMs, idleMs) -> boolean (false: not an IP address) */
static napi_value js_connect(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], result;
  double id;
  char addr[INET6_ADDRSTRLEN + 8];
  size_t alen;
  int32_t port, timeout, idle;
  relay_t *r = state(env);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 || napi_get_value_double(env, argv[0], &id) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], addr, sizeof(addr), &alen) != napi_ok || napi_get_value_int32(env, argv[2], &port) != napi_ok ||
      napi_get_value_int32(env, argv[3], &timeout) != napi_ok || napi_get_value_int32(env, argv[4], &idle) != napi_ok)
    return throw_error(env, "connect(id, address, port, timeoutMs, idleMs)");
  cmd *c = calloc(1, sizeof(cmd));
  bool ok = c && socket_address(addr, port, &c->sa, &c->salen);
  if (ok) {
    c->type = C_CONNECT;
    c->id = id;
    c->fd = -1;
    c->timeout = timeout;
    c->idle = idle;
    push_cmd(r, c);
  } else {
    free(c);
  }
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  relay_t *r = calloc(1, sizeof(relay_t));
  if (!r) return NULL;
  r->ep = r->evfd = r->spare_fd = -1;
  pthread_mutex_init(&r->mu, NULL);
  napi_set_instance_data(env, r, NULL, NULL);
  napi_add_env_cleanup_hook(env, cleanup, r);
  napi_property_descriptor props[] = {
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"adopt", NULL, js_adopt, NULL, NULL, NULL, napi_default, NULL},
      {"killAll", NULL, js_kill_all, NULL, NULL, NULL, napi_default, NULL},
      {"listen", NULL, js_listen, NULL, NULL, NULL, napi_default, NULL},
      {"bindListen", NULL, js_bind_listen, NULL, NULL, NULL, napi_default, NULL},
      {"unlisten", NULL, js_unlisten, NULL, NULL, NULL, napi_default, NULL},
      {"refuse", NULL, js_refuse, NULL, NULL, NULL, napi_default, NULL},
      {"attach", NULL, js_attach, NULL, NULL, NULL, napi_default, NULL},
      {"connect", NULL, js_connect, NULL, NULL, NULL, napi_default, NULL},
      {"route", NULL, js_route, NULL, NULL, NULL, napi_default, NULL},
      {"clearRoutes", NULL, js_clear_routes, NULL, NULL, NULL, napi_default, NULL},
      {"expressLimits", NULL, js_express_limits, NULL, NULL, NULL, napi_default, NULL},
      {"helloSni", NULL, js_hello_sni, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
