/* server_start.c — bringing the API up and down: TLS material, the
 * listeners and their libmicrohttpd daemons, the handler workers, token
 * reloads. The request side is server.c; they share server-int.h. */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "api.h"
#include "auth.h"
#include "listen.h"
#include "log.h"
#include "server-int.h"
#include "vd_error.h"

/* Read a whole PEM file into a NUL-terminated string; caller frees. */
static int read_pem(const char *path, const char *what, char **out,
                    struct vd_error *err)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (f == NULL) {
        return vd_error_set(err, -errno, "cannot open %s '%s': %s", what, path,
                            strerror(errno));
    }
    for (;;) {
        size_t n;
        if (cap - len < 4096) {
            char *p;
            if (cap > (1u << 20)) {
                fclose(f);
                free(buf);
                return vd_error_set(err, -EFBIG,
                                    "%s '%s' is larger than "
                                    "1 MiB",
                                    what, path);
            }
            p = realloc(buf, cap + 8192);
            if (p == NULL) {
                fclose(f);
                free(buf);
                return vd_error_set(err, -ENOMEM, "out of memory");
            }
            buf = p;
            cap += 8192;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    fclose(f);
    buf[len] = '\0';
    *out = buf;
    return 0;
}

#define NON_LOOPBACK_MSG                                                       \
    "--listen %s is not a loopback address and no --api-token-file is "        \
    "given: anyone who can reach it could create and delete volumes. "         \
    "Give --api-token-file, or listen on 127.0.0.1 or a unix socket"

/* Total connections per listener, leaving at least half of the
 * descriptors to volumes and the catalog. */
static unsigned connection_limit(void)
{
    struct rlimit rl;
    unsigned lim = API_MAX_CONNECTIONS;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur / 2 < lim) {
        lim = (unsigned)(rl.rlim_cur / 2);
    }
    return lim > 16 ? lim : 16;
}

/* limit is enforced by listen.c (its note 6); MHD's own is twice that,
 * out of reach, as connections still closing count there a little
 * longer. */
static int start_mhd(struct vd_api *api, struct api_srv *srv, bool tls,
                     unsigned limit, struct vd_error *err)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct MHD_OptionItem opts[16];
    int n = 0;

    if (tls) {
        flags |= MHD_USE_TLS;
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
                                            api->tls_cert};
        opts[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, api->tls_key};
        /* The raw target's length, for screen_mhd.c. */
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK,
                                            (intptr_t)api_srv_on_uri, srv};
    }
    if (!srv->l->is_unix) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                            API_PER_IP_CONNECTIONS, NULL};
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    srv->l->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, api_srv_on_request, srv,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)API_POLL_THREADS,
        MHD_OPTION_CONNECTION_LIMIT, 2 * limit, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)API_IDLE_TIMEOUT, MHD_OPTION_NOTIFY_COMPLETED,
        api_srv_on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
        api_srv_on_connection, srv, MHD_OPTION_UNESCAPE_CALLBACK,
        api_srv_unescape_none, srv, MHD_OPTION_EXTERNAL_LOGGER,
        api_srv_on_mhd_log, srv, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (srv->l->mhd == NULL) {
        return vd_error_set(err, -EIO, "cannot start the HTTP server for %s%s",
                            srv->l->desc,
                            tls ? " (is the TLS certificate "
                                  "or key malformed, or do they not match?)"
                                : "");
    }
    return 0;
}

int vd_api_check(const struct vd_api_config *cfg, struct vd_error *err)
{
    struct api_tokens *t = NULL;
    char *pem = NULL;
    int n_tcp = 0, ret;

    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        return vd_error_set(err, -EINVAL,
                            "--tls-cert and --tls-key go "
                            "together");
    }
    if (cfg->tls_cert != NULL) {
        if ((ret = read_pem(cfg->tls_cert, "TLS certificate", &pem, err)) < 0) {
            return ret;
        }
        free(pem);
        if ((ret = read_pem(cfg->tls_key, "TLS key", &pem, err)) < 0) {
            return ret;
        }
        explicit_bzero(pem, strlen(pem));
        free(pem);
    }
    if (cfg->token_file != NULL &&
        (ret = api_tokens_load(cfg->token_file, &t, err)) < 0) {
        return ret;
    }
    api_tokens_free(t);
    for (int i = 0; i < cfg->n_listen; i++) {
        if ((ret = vd_api_listen_check(cfg->listen[i], err)) < 0) {
            return ret;
        }
        if (strncmp(cfg->listen[i], "unix:", 5) == 0) {
            continue;
        }
        if (++n_tcp > 1) {
            return vd_error_set(err, -EINVAL,
                                "at most one TCP --listen "
                                "(any number of unix:PATH)");
        }
        ret = api_listen_loopback(cfg->listen[i]);
        if (ret < 0) {
            return vd_error_set(err, -EINVAL,
                                "--listen %s: not a numeric "
                                "IPv4 or IPv6 address",
                                cfg->listen[i]);
        }
        if (ret == 0 && cfg->token_file == NULL) {
            return vd_error_set(err, -EPERM, NON_LOOPBACK_MSG, cfg->listen[i]);
        }
    }
    return 0;
}

int vd_api_start(const struct vd_api_config *cfg, struct vd_volmgr *mgr,
                 struct vd_api **out, struct vd_error *err)
{
    struct vd_api *api;
    bool tls = cfg->tls_cert != NULL;
    int n_tcp = 0, ret;
    unsigned limit = connection_limit();
    struct api_accept_limits lim = {
        .deadline_s = API_REQUEST_DEADLINE,
        .max_conns = limit,
        .per_ip = API_PER_IP_CONNECTIONS,
    };

    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        return vd_error_set(err, -EINVAL,
                            "--tls-cert and --tls-key go "
                            "together");
    }
    if (cfg->n_listen < 1 || cfg->n_listen > API_MAX_LISTENERS) {
        return vd_error_set(err, -EINVAL, "want 1 to %d --listen",
                            API_MAX_LISTENERS);
    }
    if (tls && !MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        return vd_error_set(err, -ENOTSUP,
                            "this libmicrohttpd has no TLS "
                            "support");
    }
    api = calloc(1, sizeof(*api));
    if (api == NULL) {
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    api->mgr = mgr;
    api->max_body = cfg->max_body;
    api->public_metrics = cfg->public_metrics;
    pthread_mutex_init(&api->tokens_lock, NULL);
    pthread_mutex_init(&api->q_lock, NULL);
    pthread_cond_init(&api->q_cond, NULL);
    for (int i = 0; i < API_MAX_LISTENERS; i++) {
        api->ls[i].fd = -1;
    }
    if (cfg->token_file != NULL) {
        api->token_file = strdup(cfg->token_file);
        if (api->token_file == NULL) {
            ret = vd_error_set(err, -ENOMEM, "out of memory");
            goto out_stop;
        }
        if ((ret = api_tokens_load(cfg->token_file, &api->tokens, err)) < 0) {
            goto out_stop;
        }
    }
    if (tls &&
        ((ret = read_pem(cfg->tls_cert, "TLS certificate", &api->tls_cert,
                         err)) < 0 ||
         (ret = read_pem(cfg->tls_key, "TLS key", &api->tls_key, err)) < 0)) {
        goto out_stop;
    }
    for (int i = 0; i < cfg->n_listen; i++) {
        struct api_listener *l = &api->ls[i];
        bool is_unix = strncmp(cfg->listen[i], "unix:", 5) == 0;
        if (!is_unix && ++n_tcp > 1) {
            ret = vd_error_set(err, -EINVAL,
                               "at most one TCP --listen "
                               "(any number of unix:PATH)");
            goto out_stop;
        }
        ret = api_listener_open(l, cfg->listen[i], cfg->socket_mode,
                                cfg->socket_gid, tls && !is_unix, err);
        api->n = i + 1;
        if (ret < 0) {
            goto out_stop;
        }
        if (!l->is_unix && !l->loopback && api->tokens == NULL) {
            ret = vd_error_set(err, -EPERM, NON_LOOPBACK_MSG, cfg->listen[i]);
            goto out_stop;
        }
        l->screen = l->is_unix || !tls;
        api->srv[i] = (struct api_srv){.api = api, .l = l};
    }
    /* Every MHD daemon exists before the accept thread can hand it a
     * connection: a client already waiting in the backlog (a start-up
     * health probe) is handed over at once. */
    for (int i = 0; i < api->n; i++) {
        if ((ret = start_mhd(api, &api->srv[i], tls && !api->ls[i].is_unix,
                             limit, err)) < 0) {
            goto out_stop;
        }
        snprintf(api->describe + strlen(api->describe),
                 sizeof(api->describe) - strlen(api->describe), "%s%s",
                 i > 0 ? ", " : "", api->ls[i].desc);
    }
    if ((ret = api_accept_start(api->ls, api->n, &lim, &api->accept, err)) <
        0) {
        goto out_stop;
    }
    for (int i = 0; i < API_WORKERS; i++) {
        if (pthread_create(&api->workers[i], NULL, api_srv_worker_main, api) !=
            0) {
            ret = vd_error_set(err, -EAGAIN, "cannot start API workers");
            goto out_stop;
        }
        api->n_workers++;
    }
    vd_info("api: %s; %s; %u connections per listener, %u per address, "
            "%u s per request",
            api->describe,
            api->tokens != NULL ? "bearer tokens required"
                                : "no token file: loopback and root on "
                                  "unix sockets only",
            limit, (unsigned)API_PER_IP_CONNECTIONS,
            (unsigned)API_REQUEST_DEADLINE);
    *out = api;
    return 0;

out_stop:
    vd_api_stop(api);
    return ret;
}

uint16_t vd_api_port(const struct vd_api *api)
{
    for (int i = 0; i < api->n; i++) {
        if (!api->ls[i].is_unix) {
            return api->ls[i].port;
        }
    }
    return 0;
}

const char *vd_api_describe(const struct vd_api *api)
{
    return api->describe;
}

int vd_api_reload(struct vd_api *api, struct vd_error *err)
{
    struct api_tokens *t = NULL, *old;
    int ret;
    if (api->token_file == NULL) {
        return 0;
    }
    if ((ret = api_tokens_load(api->token_file, &t, err)) < 0) {
        return ret;
    }
    pthread_mutex_lock(&api->tokens_lock);
    old = api->tokens;
    api->tokens = t;
    pthread_mutex_unlock(&api->tokens_lock);
    api_tokens_free(old);
    vd_info("api: reloaded %d token(s) from %s", api_tokens_count(t),
            api->token_file);
    return 0;
}

void vd_api_stop(struct vd_api *api)
{
    if (api == NULL) {
        return;
    }
    api_accept_stop(api->accept);
    /* Workers finish what is queued and resume those connections; new
     * requests are answered 503 from here on. */
    pthread_mutex_lock(&api->q_lock);
    api->stopping = true;
    pthread_cond_broadcast(&api->q_cond);
    pthread_mutex_unlock(&api->q_lock);
    for (int i = 0; i < api->n_workers; i++) {
        pthread_join(api->workers[i], NULL);
    }
    for (int i = 0; i < api->n; i++) {
        if (api->ls[i].mhd != NULL) {
            MHD_stop_daemon(api->ls[i].mhd);
        }
        api_listener_close(&api->ls[i]);
    }
    api_accept_free(api->accept);
    api_tokens_free(api->tokens);
    free(api->token_file);
    if (api->tls_key != NULL) {
        explicit_bzero(api->tls_key, strlen(api->tls_key));
    }
    free(api->tls_key);
    free(api->tls_cert);
    pthread_mutex_destroy(&api->tokens_lock);
    pthread_mutex_destroy(&api->q_lock);
    pthread_cond_destroy(&api->q_cond);
    free(api);
}
