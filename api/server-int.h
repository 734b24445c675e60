/* server-int.h — private to api/server.c (requests, handler workers)
 * and api/server_start.c (starting and stopping the listeners): the API
 * object they share and the libmicrohttpd callbacks server.c provides. */
#ifndef VD_API_SERVER_INT_H
#define VD_API_SERVER_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "listen.h"

#define API_MAX_CONNECTIONS 2048 /* per listener; capped by RLIMIT_NOFILE */
#define API_PER_IP_CONNECTIONS 32
#define API_IDLE_TIMEOUT 10     /* s without a byte: closed */
#define API_REQUEST_DEADLINE 15 /* s for a whole request (listen.c) */
#define API_POLL_THREADS 2      /* MHD polling threads per listener */
#define API_WORKERS 8           /* handler threads (note 2) */
#define API_MAX_LISTENERS 9

/* One listener's MHD daemon and what it needs to know about itself. */
struct api_srv {
    struct vd_api *api;
    struct api_listener *l;
};

struct conn;
struct MHD_Connection;

struct vd_api {
    struct vd_volmgr *mgr;
    size_t max_body;
    bool public_metrics;
    char *token_file; /* NULL: no tokens */
    pthread_mutex_t tokens_lock;
    struct api_tokens *tokens; /* under tokens_lock */
    struct api_listener ls[API_MAX_LISTENERS];
    struct api_srv srv[API_MAX_LISTENERS];
    int n;
    struct api_accept *accept;
    char *tls_cert, *tls_key; /* PEM text */
    char describe[512];

    /* Handler workers (note 2). */
    pthread_mutex_t q_lock;
    pthread_cond_t q_cond;
    struct conn *q_head, *q_tail; /* under q_lock */
    unsigned q_running;           /* under q_lock */
    bool stopping;                /* under q_lock */
    pthread_t workers[API_WORKERS];
    int n_workers;
};

/* ---- server.c: MHD callbacks (server.c notes 1-4) ---- */
enum MHD_Result api_srv_on_request(void *cls, struct MHD_Connection *c,
                                   const char *url, const char *method,
                                   const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls);
void api_srv_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe);
void api_srv_on_connection(void *cls, struct MHD_Connection *c,
                           void **socket_context,
                           enum MHD_ConnectionNotificationCode toe);
void api_srv_on_mhd_log(void *cls, const char *fmt, va_list ap);
size_t api_srv_unescape_none(void *cls, struct MHD_Connection *c, char *s);
/* ---- screen_mhd.c: screen.h's checks on a head MHD parsed (TLS) ---- */
/* URI log callback: the raw target's length, for the first on_request
 * call (its con_cls, tagged with the low bit). */
void *api_srv_on_uri(void *cls, const char *uri, struct MHD_Connection *c);
/* 0 if the head is acceptable, else an HTTP status and msg. */
unsigned api_head_check_mhd(struct MHD_Connection *c, const char *method,
                            const char *url, const char *version,
                            size_t uri_len, char *msg, size_t msglen);
/* Handler worker thread (note 2); arg is the struct vd_api. */
void *api_srv_worker_main(void *arg);

#endif
