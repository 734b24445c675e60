/* nbd-int.h — private interface between the NBD driver's files.
 *
 * nbd.c is the driver table (open/close, the data ops, backend state); uri.c
 * says which URIs are accepted; conn.c owns the connections: dialing,
 * one I/O thread per connection, reconnecting; request.c runs a request
 * to completion; aio.c starts reads, writes and flushes without waiting
 * for them. */
#ifndef VD_NBD_INT_H
#define VD_NBD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image-int.h"

struct nbd_handle;
struct nbd_aio_req;
struct vd_aio;

#define NBD_MAX_CONNS 16
/* First reconnect delay; it doubles per failure. */
#define NBD_BACKOFF_MIN_MS 100u
/* How long a request waits for a poked redial. */
#define NBD_POKE_WAIT_MS 500u

/* What the server advertised on the first connection. */
struct nbd_server_info {
    uint64_t size;
    bool read_only, can_flush, can_trim, can_zero, can_fua, can_multi_conn;
    bool can_extents;     /* base:allocation was negotiated */
    uint64_t max_request; /* largest pread/pwrite we send */
};

/* Capabilities as seen by the data path (lock free). */
#define NBD_CAP_KNOWN 0x01u /* the bits below are valid */
#define NBD_CAP_FLUSH 0x02u
#define NBD_CAP_TRIM 0x04u
#define NBD_CAP_ZERO 0x08u
#define NBD_CAP_EXTENTS 0x10u
#define NBD_CAP_RO 0x20u

#define NBD_KILL_TIMEOUT 1  /* a request got no reply in time */
#define NBD_KILL_SHUTDOWN 2 /* the server said it is shutting down */

/* One connection to the server and the thread that drives it. */
struct nbd_conn {
    struct nbd_state *s;
    int index;
    bool thread_started;
    atomic_bool up; /* h is published and usable (a hint) */
    pthread_t thread;
    int wake_fd; /* eventfd: work queued, kill, or stop */
    /* hlock: read-held by submitters while they call nbd_aio_* on h;
     * write-held by the I/O thread only to publish or retire h. */
    pthread_rwlock_t hlock;
    struct nbd_handle *h;      /* hlock; NULL while not connected */
    int sock_fd;               /* I/O thread only: our dup of h's socket */
    _Atomic uint64_t gen;      /* bumped on every publish of h */
    _Atomic uint64_t kill_gen; /* drop h if it is still this generation */
    atomic_int kill_why;       /* NBD_KILL_*: why kill_gen was set */
    atomic_bool poked;         /* a request waits: end the backoff early */
    struct nbd_handle *preset; /* a handle open() already connected */
    /* aio.c: finished aios the I/O thread settles (note 5); pushed from
     * libnbd's free callback by any thread, popped by the I/O thread. */
    struct nbd_aio_req *_Atomic settle;
};

/* Driver state at img->opaque.
 *
 * DESIGN NOTES
 * 1. A caller never blocks in libnbd: it submits nbd_aio_* under a read
 *    lock of one connection and sleeps on its own request until libnbd
 *    calls the request's free callback, which libnbd calls exactly once,
 *    after the completion callback, also when submission fails or the
 *    handle is closed with the command still pending.
 * 2. Only a connection's I/O thread calls nbd_aio_notify_* and nbd_close
 *    on its handle, and it retires a handle only under the write lock, so
 *    a submitter never sees a freed handle.
 * 3. Every request carries one deadline (now + timeout). A request that
 *    fails because its connection dropped is resubmitted on a live one
 *    until then; when the deadline passes with the request still on the
 *    wire, its connection is killed (which completes it) and it fails
 *    with -EIO. The caller's buffer is never handed back while libnbd may
 *    still write to it.
 * 4. While no connection is up, new requests wait for one at most until
 *    down_since + timeout, so a long outage fails I/O quickly instead of
 *    making every request wait the whole timeout. A waiting request pokes
 *    the I/O threads to redial at once (not more often than every
 *    NBD_BACKOFF_MIN_MS) and waits at least NBD_POKE_WAIT_MS for that, so
 *    a server that is back serves the first request, whatever the backoff.
 * 5. An aio (aio.c) is a read, write or flush with no caller asleep on
 *    it. Per attempt the submitter and libnbd's free callback each hold
 *    one reference; whoever drops the last pushes it on its connection's
 *    settle stack, and that connection's I/O thread, outside every lock
 *    (libnbd's included), calls done or hands it to the aio timer for a
 *    retry. So done runs once, and only after libnbd let go of the
 *    buffer (note 3).
 * 6. The aio timer thread keeps the other guarantees for aios: they are
 *    listed in submission order, which is deadline order (one timeout for
 *    all), so it sees expiries at the head; it kills the connection of an
 *    expired aio still on the wire, resubmits dropped ones, and fails
 *    those that find no connection by note 4's limits.
 * 7. Submitting never waits: a request that needs splitting, a flush the
 *    server does not offer, or any request that finds no live connection
 *    is refused with -EAGAIN and runs synchronously.
 * 8. Every dial, the first and each redial, confines a unix socket again
 *    (vd_nbd_socket_pin): the path is resolved, checked against
 *    socket_dirs and pinned by an O_PATH descriptor, and libnbd connects
 *    through /proc/self/fd/N, so the socket checked is the one reached.
 */
struct nbd_state {
    char *uri;
    char **socket_dirs;          /* a copy of vd_open_opts.socket_dirs; NULL if
                                    none: checked again at every dial */
    uint32_t timeout_ms;         /* per-request bound, see note 3 */
    uint32_t connect_timeout_ms; /* one dial, handshake included */
    uint32_t backoff_max_ms;     /* reconnect delay cap */
    bool readonly;               /* opened read-only: never writes */
    int n_conns;                 /* connections wanted with multi-conn */
    struct nbd_conn conns[NBD_MAX_CONNS];
    atomic_uint rr;               /* round-robin cursor */
    atomic_uint caps;             /* NBD_CAP_*, set once the server is known */
    _Atomic uint64_t max_request; /* largest pread/pwrite sent at once */
    atomic_bool stopping;

    pthread_mutex_t lock;   /* protects the fields below */
    pthread_cond_t changed; /* a connection went up or down (monotonic) */
    bool have_info;
    struct nbd_server_info info; /* valid when have_info */
    uint64_t size;               /* info.size, or the open size hint */
    int n_up;                    /* connections currently usable */
    int64_t down_since_ms;       /* when n_up last fell to 0 (monotonic) */
    uint64_t connects;           /* successful connects, all connections */
    uint64_t reconnects;         /* connects after an earlier one died */
    char last_error[256];        /* last connect or connection failure */

    /* aio.c (notes 5-6); s->lock protects these too. */
    struct nbd_aio_req *aio_head, *aio_tail; /* outstanding, oldest first */
    struct nbd_aio_req *aio_wait; /* dropped ones handed to the timer */
    pthread_cond_t aio_cv;        /* timer: a retry, a connection, or quit */
    bool aio_started;             /* the timer thread runs */
    bool aio_quit;                /* the timer thread must finish */
    pthread_t aio_thread;
};

/* Data requests run by vd_nbd_run(). */
enum nbd_op {
    NBD_OP_READ,
    NBD_OP_WRITE,
    NBD_OP_FLUSH,
    NBD_OP_TRIM,
    NBD_OP_ZERO,
    NBD_OP_BLOCK_STATUS,
};

struct nbd_req {
    enum nbd_op op;
    void *buf; /* READ: out; WRITE: in */
    uint64_t count, off;
    uint32_t flags; /* LIBNBD_CMD_FLAG_* */
    /* BLOCK_STATUS result: the first base:allocation extent. */
    bool bs_got;
    uint32_t bs_len, bs_flags;
};

/* conn.c */
int64_t vd_nbd_now_ms(void);
/* Connect a new handle to uri within timeout_ms. On failure returns NULL
 * and sets *code (-EINVAL for a URI libnbd refuses, else -ENXIO) and msg.
 * wake_fd (or -1) aborts the wait when s->stopping is set. */
struct nbd_handle *vd_nbd_dial(struct nbd_state *s, uint32_t timeout_ms,
                               int wake_fd, int *code, char *msg, size_t len);
/* Read what the server advertises on a connected handle. */
void vd_nbd_read_info(struct nbd_handle *h, struct nbd_server_info *info);
/* Adopt info as the image's server description (s->lock held). */
void vd_nbd_set_info(struct nbd_state *s, const struct nbd_server_info *info);
/* Start the I/O threads (connection 0 uses conns[0].preset if set). */
int vd_nbd_conns_start(struct nbd_state *s);
/* Stop and join every I/O thread and close every handle. */
void vd_nbd_conns_stop(struct nbd_state *s);
/* Wake c's I/O thread: new work to poll for, a kill, or stop. */
void vd_nbd_wake(struct nbd_conn *c);

/* uri.c */
/* Whether the driver accepts uri: 0, or -EINVAL with msg set. */
int vd_nbd_uri_check(const char *uri, char *msg, size_t len);
/* For an nbd+unix URI that passed vd_nbd_uri_check: 0 when its socket is
 * in one of dirs (vd_open_opts.socket_dirs), else -EACCES (or -EINVAL for
 * a path that cannot be checked) with msg set. 0 for other URIs. */
int vd_nbd_socket_check(const char *uri, const char *const *dirs, char *msg,
                        size_t len);
/* For dialing an nbd+unix URI: resolve its socket now, require what it
 * resolves to be a socket in one of dirs, and pin it with an O_PATH
 * descriptor (*fd, caller closes). *dial_uri is uri with the socket
 * replaced by /proc/self/fd/N, so the connect reaches exactly the inode
 * that was checked, whatever is renamed or symlinked meanwhile. For other
 * URIs *fd is -1 and *dial_uri is uri. 0, or -errno with msg set
 * (-EACCES when the socket is outside dirs). */
int vd_nbd_socket_pin(const char *uri, const char *const *dirs, int *fd,
                      char *dial_uri, size_t dial_len, char *msg, size_t len);

/* request.c */
/* Run r on some live connection within the timeout: 0 or -errno. */
int vd_nbd_run(struct nbd_state *s, struct nbd_req *r);
/* Whether err means "the connection went away", not "the server said no". */
bool vd_nbd_conn_error(int err);
/* Ask the I/O threads to redial now: someone waits for a connection. */
void vd_nbd_poke(struct nbd_state *s);
/* The server is stopping (ESHUTDOWN): drop every connection so it can. */
void vd_nbd_drop_all(struct nbd_state *s);

/* aio.c */
/* Start aio on a live connection (note 7): 0, or -EAGAIN to run it
 * synchronously instead. */
int vd_nbd_aio_submit(struct nbd_state *s, struct vd_aio *aio);
/* Settle the aios finished on c (c's I/O thread only, no locks held). */
void vd_nbd_aio_settle(struct nbd_conn *c);
/* Mark the calling thread as c's I/O thread (pushes need no wake). */
void vd_nbd_aio_io_thread(struct nbd_conn *c);
/* Whether the calling thread is c's I/O thread (for assertions). */
bool vd_nbd_on_io_thread(const struct nbd_conn *c);
/* Start and stop the timer thread; stop after every I/O thread ended. */
int vd_nbd_aio_start(struct nbd_state *s);
void vd_nbd_aio_stop(struct nbd_state *s);

#endif
