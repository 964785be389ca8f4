/* The edge's data plane once a flow is decided and connected: both sockets are handed to one relay
 * thread per process that copies bytes with recv/send from one 64 KiB scratch buffer, driven by a
 * edge-triggered epoll. No JavaScript runs per chunk; JS hears of a flow again only when it ends
 * (bytes each way and why), in batches through one thread-safe function.
 *
 * Semantics match the JavaScript relay (libs/edge/src/flow.ts): an end (FIN) from one side becomes
 * a shutdown(SHUT_WR) of the other once the bytes before it are written; the flow ends when both
 * directions have; an error on either side closes both; a flow idle for idleMs in both directions
 * is closed. The first reason wins.
 *
 * JS API (per environment):
 *   start(cb)              cb(Float64Array [id, bytesUp, bytesDown, reason, errno, ...]) per batch
 *   adopt(clientFd, upstreamFd, id, idleMs, upFirst|null, downFirst|null, flags) -> boolean
 *                          dups both descriptors (the caller then destroys its sockets); flags: 1 the
 *                          client already ended, 2 the upstream already ended
 *   killAll(reason)        closes every flow with that reason (drain timeout)
 *   setMaxPipes(n)         how many directions may splice through a pipe at once (default 128)
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SCRATCH (64 * 1024)
/* A direction that has moved this much goes through a pipe with splice(2): bulk transfers cost no
 * copies through user space. At most max_pipes directions per process hold a pipe (two
 * descriptors each: the edge's descriptor budget reserves them, setMaxPipes); the others copy. */
#define SPLICE_AFTER (256 * 1024)
#define SPLICE_MAX_DEFAULT 128
#define PIPE_BYTES (256 * 1024)
#define RECORD 5
#define MAX_EVENTS 256

enum { R_NONE = 0, R_CLIENT_CLOSED, R_UPSTREAM_CLOSED, R_IDLE, R_CLIENT_ERROR, R_UPSTREAM_ERROR, R_SHUTDOWN };

typedef struct flow flow;
typedef struct {
  flow *f;
  int i;
  int fd;
  int registered;
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
  /* bulk: a pipe the direction splices through (no copy to user space), and what it holds */
  int pipe[2];
  size_t piped;
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
};

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
  int notify_pending;
  /* relay thread only */
  flow *head;
  flow *graveyard;
  flow *again;
  int pipes;
  int max_pipes; /* written by the main thread (setMaxPipes), read atomically */
  int min_idle_ms;
  char scratch[SCRATCH];
  /* main thread only */
  napi_threadsafe_function tsfn;
  int64_t active;
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

/* ---- relay thread ---- */

static void finish(relay_t *r, flow *f, int reason, int err) {
  if (f->dead) return;
  f->dead = 1;
  if (!f->reason) {
    f->reason = reason;
    f->err = err;
  }
  for (int i = 0; i < 2; i++) {
    if (f->s[i].registered) epoll_ctl(r->ep, EPOLL_CTL_DEL, f->s[i].fd, NULL);
    close(f->s[i].fd);
    free(f->d[i].buf);
    f->d[i].buf = NULL;
    if (f->d[i].pipe[0] >= 0) {
      close(f->d[i].pipe[0]);
      close(f->d[i].pipe[1]);
      f->d[i].pipe[0] = f->d[i].pipe[1] = -1;
      r->pipes--;
    }
  }
  if (f->prev) f->prev->next = f->next;
  else r->head = f->next;
  if (f->next) f->next->prev = f->prev;
  f->next = r->graveyard; /* freed after the current batch of events, which may still name it */
  r->graveyard = f;
  pthread_mutex_lock(&r->mu);
  if (r->done_len + RECORD > r->done_cap) {
    size_t cap = r->done_cap ? r->done_cap * 2 : 64 * RECORD;
    double *grown = realloc(r->done, cap * sizeof(double));
    if (grown) {
      r->done = grown;
      r->done_cap = cap;
    }
  }
  if (r->done_len + RECORD <= r->done_cap) {
    double *rec = r->done + r->done_len;
    rec[0] = f->id;
    rec[1] = (double)f->d[0].bytes;
    rec[2] = (double)f->d[1].bytes;
    rec[3] = f->reason;
    rec[4] = f->err;
    r->done_len += RECORD;
  }
  pthread_mutex_unlock(&r->mu);
}

/* `at`: the side whose socket failed (0 client, 1 upstream) */
static void fail(relay_t *r, flow *f, int at, int err) {
  finish(r, f, at == 0 ? R_CLIENT_ERROR : R_UPSTREAM_ERROR, err);
}

/*
 * Moves what it can of direction k (reads side k, writes side 1-k) until a side would block, the
 * flow ends, or 16 reads (1 MiB): then the flow waits on the again list so that one busy flow
 * does not starve the others. Edge-triggered: a side is tried only while its readiness flag says
 * so, and the flag is cleared when the kernel says it would block.
 */
/*
 * Whether direction k may read now: not once its end was read (the FIN is passed on, and the flow
 * ends when both directions have), not while its socket would block, and not past 16 reads in one
 * turn (the flow goes on the again list, so that one busy flow does not starve the others).
 */
static int may_read(relay_t *r, flow *f, int k, int round) {
  dir *d = &f->d[k];
  if (d->eof) {
    if (!d->shut) {
      shutdown(f->s[1 - k].fd, SHUT_WR);
      d->shut = 1;
      if (f->d[1 - k].shut) finish(r, f, R_NONE, 0);
    }
    return 0;
  }
  if (!f->s[k].readable) return 0;
  if (round >= 16) {
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
 * What a read (recv or splice) of direction k returned: 1, bytes to pass on; 0, the end, recorded
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

static void pump_splice(relay_t *r, flow *f, int k) {
  dir *d = &f->d[k];
  side *in = &f->s[k], *out = &f->s[1 - k];
  for (int round = 0; !f->dead; round++) {
    while (d->piped > 0) {
      if (!out->writable) return;
      ssize_t w = splice(d->pipe[0], NULL, out->fd, NULL, d->piped, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) {
          out->writable = 0;
          return;
        }
        return fail(r, f, 1 - k, errno);
      }
      d->piped -= (size_t)w;
      d->bytes += (uint64_t)w;
    }
    if (!may_read(r, f, k, round)) return;
    /* the pipe is empty here, so would-block means the socket has nothing */
    ssize_t n = splice(in->fd, NULL, d->pipe[1], NULL, PIPE_BYTES, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    int t = took(r, f, k, n);
    if (t < 0) return;
    if (t == 0) continue;
    d->piped = (size_t)n;
    if ((size_t)n < PIPE_BYTES && !in->rdhup) in->readable = 0;
  }
}

/* Past SPLICE_AFTER bytes, with nothing pending in user space and a pipe to spare: splice from now on. */
static void maybe_splice(relay_t *r, dir *d) {
  if (d->pipe[0] >= 0 || d->bytes < SPLICE_AFTER || d->len > d->off || r->pipes >= __atomic_load_n(&r->max_pipes, __ATOMIC_RELAXED)) return;
  if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    d->pipe[0] = d->pipe[1] = -1;
    return;
  }
  fcntl(d->pipe[1], F_SETPIPE_SZ, PIPE_BYTES);
  r->pipes++;
}

static void pump(relay_t *r, flow *f, int k) {
  dir *d = &f->d[k];
  if (d->pipe[0] >= 0) return pump_splice(r, f, k);
  side *in = &f->s[k], *out = &f->s[1 - k];
  for (int round = 0; !f->dead; round++) {
    if (round == 4) {
      maybe_splice(r, d);
      if (d->pipe[0] >= 0) return pump_splice(r, f, k);
    }
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
    ssize_t n = recv(in->fd, r->scratch, SCRATCH, 0);
    int t = took(r, f, k, n);
    if (t < 0) return;
    if (t == 0) continue;
    /* less than asked: the queue was empty; the next bytes bring a new event. Not the end: a FIN
     * that came with these bytes brings none, so once it has been seen, read on until recv says 0. */
    if (n < SCRATCH && !in->rdhup) in->readable = 0;
    ssize_t w = out->writable ? send(out->fd, r->scratch, (size_t)n, MSG_NOSIGNAL) : 0;
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

static void on_event(relay_t *r, side *s, uint32_t events, int64_t now) {
  flow *f = s->f;
  int i = s->i;
  if (f->dead) return;
  f->last = now;
  if (events & EPOLLERR) {
    /* a reset or a failed send: the connection is gone, and with it whatever was pending */
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) err = EPIPE;
    return fail(r, f, i, err);
  }
  if (events & (EPOLLRDHUP | EPOLLHUP)) s->rdhup = 1;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) s->readable = 1;
  if (events & (EPOLLOUT | EPOLLHUP)) s->writable = 1;
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

static void kill_all(relay_t *r, int reason) {
  while (r->head) finish(r, r->head, reason, 0);
}

static void *run(void *arg) {
  relay_t *r = arg;
  struct epoll_event evs[MAX_EVENTS];
  int64_t last_sweep = now_ms();
  for (;;) {
    int step = r->min_idle_ms > 0 ? r->min_idle_ms / 10 : 1000;
    if (step < 25) step = 25;
    if (step > 1000) step = 1000;
    int n = epoll_wait(r->ep, evs, MAX_EVENTS, r->again ? 0 : step);
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
        int kill = r->kill_reason;
        r->kill_reason = 0;
        stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        adopt_incoming(r, list, now);
        if (kill) kill_all(r, kill);
        continue;
      }
      on_event(r, evs[e].data.ptr, evs[e].events, now);
    }
    run_again(r);
    if (now - last_sweep >= step) {
      last_sweep = now;
      for (flow *f = r->head, *next; f; f = next) {
        next = f->next;
        if (f->idle_ms > 0 && now - f->last >= f->idle_ms) finish(r, f, R_IDLE, 0);
      }
    }
    /* a dead flow still on the again list is freed once run_again has taken it off */
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
    pthread_mutex_lock(&r->mu);
    int notify = r->done_len > 0 && !r->notify_pending && !stop;
    if (notify) r->notify_pending = 1;
    pthread_mutex_unlock(&r->mu);
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

static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)data;
  relay_t *r = context;
  if (!env) return;
  pthread_mutex_lock(&r->mu);
  double *done = r->done;
  size_t len = r->done_len;
  r->done = NULL;
  r->done_len = r->done_cap = 0;
  r->notify_pending = 0;
  pthread_mutex_unlock(&r->mu);
  if (!len) {
    free(done);
    return;
  }
  napi_value ab, arr, global;
  void *bytes;
  if (napi_create_arraybuffer(env, len * sizeof(double), &bytes, &ab) == napi_ok) {
    memcpy(bytes, done, len * sizeof(double));
    napi_create_typedarray(env, napi_float64_array, len, ab, 0, &arr);
    r->active -= (int64_t)(len / RECORD);
    if (r->active <= 0) {
      r->active = 0;
      napi_unref_threadsafe_function(env, r->tsfn);
    }
    napi_get_global(env, &global);
    napi_call_function(env, global, cb, 1, &arr, NULL);
  }
  free(done);
}

static void cleanup(void *arg) {
  relay_t *r = arg;
  if (r->started) {
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
  if (r->ep >= 0) close(r->ep);
  if (r->evfd >= 0) close(r->evfd);
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

static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], name;
  relay_t *r = state(env);
  if (r->started) return throw_error(env, "relay already started");
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return throw_error(env, "start(callback)");
  napi_create_string_utf8(env, "portcullis.relay", NAPI_AUTO_LENGTH, &name);
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
  f->d[0].pipe[0] = f->d[0].pipe[1] = f->d[1].pipe[0] = f->d[1].pipe[1] = -1;
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
  if (r->active++ == 0) napi_ref_threadsafe_function(env, r->tsfn);
  pthread_mutex_lock(&r->mu);
  f->next = r->incoming;
  r->incoming = f;
  pthread_mutex_unlock(&r->mu);
  wake(r);
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
  pthread_mutex_lock(&r->mu);
  r->kill_reason = reason;
  pthread_mutex_unlock(&r->mu);
  wake(r);
  return NULL;
}

static napi_value js_set_max_pipes(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t n = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 0) return throw_error(env, "setMaxPipes(directions)");
  __atomic_store_n(&state(env)->max_pipes, n, __ATOMIC_RELAXED);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  relay_t *r = calloc(1, sizeof(relay_t));
  if (!r) return NULL;
  r->ep = r->evfd = -1;
  r->max_pipes = SPLICE_MAX_DEFAULT;
  pthread_mutex_init(&r->mu, NULL);
  napi_set_instance_data(env, r, NULL, NULL);
  napi_add_env_cleanup_hook(env, cleanup, r);
  napi_property_descriptor props[] = {
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"adopt", NULL, js_adopt, NULL, NULL, NULL, napi_default, NULL},
      {"killAll", NULL, js_kill_all, NULL, NULL, NULL, napi_default, NULL},
      {"setMaxPipes", NULL, js_set_max_pipes, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 4, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
