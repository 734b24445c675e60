/* nbd_servers.h — NBD servers for unit tests: start nbdkit or qemu-nbd
 * on a socket in a private temp dir, wait until it listens, stop it.
 * Every server dies with the test (PR_SET_PDEATHSIG, atexit, a watchdog
 * and fatal-signal handlers that clean up). Header-only: each test is
 * one executable. */
#ifndef VD_NBD_SERVERS_H
#define VD_NBD_SERVERS_H

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/vdnbd.XXXXXX";
/* vd_open_opts.socket_dirs that allows the servers' sockets in dir. */
static char dir_real[PATH_MAX];
static const char *socket_dirs[] = {dir_real, NULL};
static pid_t children[32];
static int n_children;

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline void stop_server(pid_t pid)
{
    for (int i = 0; i < n_children; i++) {
        if (children[i] == pid) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            children[i] = children[--n_children];
            return;
        }
    }
}

/* Wait up to ms for a server to exit by itself; true when it did. */
static inline bool server_exited(pid_t pid, int ms)
{
    for (int t = 0; t < ms; t += 10) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            for (int i = 0; i < n_children; i++) {
                if (children[i] == pid) {
                    children[i] = children[--n_children];
                }
            }
            return true;
        }
        sleep_ms(10);
    }
    return false;
}

static inline void cleanup(void)
{
    while (n_children > 0) {
        stop_server(children[0]);
    }
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
                unlink(p);
            }
        }
        closedir(d);
        rmdir(dir);
    }
}

static const char *test_name = "test";

static inline void on_alarm(int sig)
{
    (void)sig;
    fprintf(stderr, "%s: watchdog expired\n", test_name);
    cleanup();
    _exit(2);
}

/* A crash or ^C still removes servers and files, then dies as it would.
 * (raise() from here would wait until this handler's thread returns,
 * while the other threads carry on testing.) */
static inline void on_fatal(int sig)
{
    cleanup();
    if (sig == SIGINT || sig == SIGTERM) {
        _exit(128 + sig);
    }
    signal(sig, SIG_DFL); /* SIGSEGV/SIGBUS fault again, abort() re-raises */
}

static inline bool can_connect(const char *sock, int port)
{
    int fd, ok;
    if (sock != NULL) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    }
    close(fd);
    return ok;
}

/* Start argv (NULL-terminated) and wait until it listens on sock or port. */
static inline pid_t start_server(const char *sock, int port,
                                 const char *const *argv)
{
    char log[512];
    snprintf(log, sizeof(log), "%s/servers.log", dir);
    if (sock != NULL) {
        unlink(sock); /* a killed server leaves its socket behind */
    }
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (pid < 0) {
        return -1;
    }
    children[n_children++] = pid;
    for (int i = 0; i < 500; i++) {
        if (can_connect(sock, port)) {
            return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            break;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "server %s did not start (see %s)\n", argv[0], log);
    return -1;
}

/* nbdkit on a unix socket with extra arguments before the plugin. */
#define NBDKIT(sock, ...)                                                      \
    start_server(sock, 0,                                                      \
                 (const char *const[]){"nbdkit", "--exit-with-parent", "-f",   \
                                       "-U", sock, __VA_ARGS__, NULL})

static inline int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* Make the temp dir and arm cleanup; a watchdog ends the test after
 * watchdog_s seconds. 0, or -1 (reported) if the dir cannot be made. */
static inline int servers_init(const char *name, unsigned watchdog_s)
{
    test_name = name;
    if (mkdtemp(dir) == NULL || realpath(dir, dir_real) == NULL) {
        perror(dir);
        return -1;
    }
    atexit(cleanup);
    signal(SIGALRM, on_alarm);
    signal(SIGSEGV, on_fatal);
    signal(SIGABRT, on_fatal);
    signal(SIGBUS, on_fatal);
    signal(SIGINT, on_fatal);
    signal(SIGTERM, on_fatal);
    alarm(watchdog_s);
    return 0;
}

#endif
