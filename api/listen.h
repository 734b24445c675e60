/* listen.h — private to api/: listening sockets, the accept loop, and
 * the connection table that enforces the whole-request deadline.
 *
 * The server accepts connections itself and hands them to
 * libmicrohttpd (MHD_add_connection): MHD's own accept loop busy-waits
 * when accept() fails with EMFILE and no connection is open, and it
 * cannot apply a deadline to a request whose headers never end. */
#ifndef VD_API_LISTEN_H
#define VD_API_LISTEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct vd_error;
struct MHD_Daemon;
struct api_accept;

struct api_listener {
    int fd; /* -1 when closed */
    bool is_unix;
    bool loopback; /* TCP on 127.0.0.0/8 or ::1 */
    bool v6;
    char path[108];         /* unix socket path */
    char desc[320];         /* "http://127.0.0.1:8080", "unix:/run/x.sock" */
    uint16_t port;          /* bound TCP port */
    bool screen;            /* check request heads first (plain HTTP) */
    struct MHD_Daemon *mhd; /* connections accepted here go to it */
    unsigned n_pending;     /* heads being screened (accept thread) */
    unsigned n_live;        /* handed to MHD, not closed (table lock) */
    unsigned n_cut;         /* of those, shut down (table lock) */
};

struct api_accept_limits {
    unsigned deadline_s; /* a whole request, from accept */
    unsigned max_conns;  /* per listener: connections in MHD, and
                            connections waiting for their head, per
                            listener (a flood on TCP leaves the unix
                            sockets alone) */
    unsigned per_ip;     /* of those, from one address */
};

/* Bind spec: "HOST:PORT", "[V6]:PORT" or "unix:PATH". For unix sockets,
 * mode (or 0660 if mode is 0) and group gid (-1 = keep) are applied
 * before listen(), and a stale socket file is replaced; a live one is
 * an error. 0 or -errno with err set. */
int api_listener_open(struct api_listener *l, const char *spec, mode_t mode,
                      gid_t gid, bool tls, struct vd_error *err);
void api_listener_close(struct api_listener *l); /* unlinks unix path */
/* 1 if the TCP spec names a loopback address, 0 if not, -EINVAL. */
int api_listen_loopback(const char *spec);

/* One tracked connection (MHD's socket context). The deadline counts
 * from accept (screening included), or from the end of the previous
 * request on the same connection, while no handler runs for it. */
struct api_conn {
    int fd;
    bool is_unix;
    struct api_listener *l;
    uid_t uid; /* peer uid on a unix socket */
    bool have_uid;
    struct timespec start; /* CLOCK_MONOTONIC */
    bool busy;             /* a handler runs: no deadline */
    bool cut;              /* shut down (deadline, or making room) */
    bool head_seen;        /* MHD has parsed a request head */
    struct api_conn *prev, *next;
};

/* Start the accept thread over n listeners. 0 or -errno. */
int api_accept_start(struct api_listener *ls, int n,
                     const struct api_accept_limits *lim,
                     struct api_accept **out, struct vd_error *err);
/* Stop accepting and close connections still waiting for their head;
 * accepts NULL. Call before stopping the MHD daemons. */
void api_accept_stop(struct api_accept *a);
/* Free after every MHD daemon stopped (their close notifications use
 * the connection table); accepts NULL. */
void api_accept_free(struct api_accept *a);

/* MHD connection notifications: track and untrack. */
struct api_conn *api_conn_started(struct api_accept *a, int fd,
                                  struct api_listener *l);
void api_conn_closed(struct api_accept *a, struct api_conn *c);
/* Mark a handler running (busy) or the request finished (deadline
 * restarts). */
void api_conn_set_busy(struct api_accept *a, struct api_conn *c, bool busy);
void api_conn_request_done(struct api_accept *a, struct api_conn *c);
/* A request head has arrived on c (listen.c note 7). */
void api_conn_head_seen(struct api_accept *a, struct api_conn *c);

#endif
