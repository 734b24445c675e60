/* screen.c — the request-head checks of screen.h. The head is HTTP/1.x
 * as RFC 9112 defines it; anything ambiguous is refused rather than
 * guessed at, since a proxy in front of the daemon might guess
 * differently (request smuggling). */
#include "screen.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

size_t api_head_length(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] == '\n' && buf[i + 1] == '\n') {
            return i + 2;
        }
        if (i + 3 < len && buf[i] == '\r' && buf[i + 1] == '\n' &&
            buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            return i + 4;
        }
    }
    return 0;
}

/* Next line of [*p, end): returns its length without the line end and
 * advances *p past it. */
static size_t next_line(const char **p, const char *end, const char **line)
{
    const char *s = *p;
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    size_t n;
    if (nl == NULL) {
        nl = end;
    }
    n = (size_t)(nl - s);
    if (n > 0 && s[n - 1] == '\r') {
        n--;
    }
    *line = s;
    *p = nl < end ? nl + 1 : end;
    return n;
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static unsigned bad(char *msg, size_t msglen, unsigned status, const char *what)
{
    snprintf(msg, msglen, "%s", what);
    return status;
}

/* Trim optional white space around a field value. */
static void trim(const char **v, size_t *n)
{
    while (*n > 0 && (**v == ' ' || **v == '\t')) {
        (*v)++;
        (*n)--;
    }
    while (*n > 0 && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t')) {
        (*n)--;
    }
}

static bool name_is(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

unsigned api_head_check(const char *head, size_t len, char *msg, size_t msglen)
{
    const char *p = head, *end = head + len, *line;
    const char *sp1, *sp2;
    size_t n;
    int n_host = 0, n_clen = 0, n_te = 0;
    bool http11;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)head[i];
        if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f) {
            return bad(msg, msglen, 400,
                       "the request head contains a NUL "
                       "or another control character");
        }
    }
    /* Request line: METHOD SP TARGET SP HTTP/1.x */
    n = next_line(&p, end, &line);
    sp1 = memchr(line, ' ', n);
    sp2 =
        sp1 != NULL ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line)) : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == line || sp2 == sp1 + 1 ||
        memchr(sp2 + 1, ' ', n - (size_t)(sp2 + 1 - line)) != NULL ||
        memchr(line, '\t', n) != NULL) {
        return bad(msg, msglen, 400,
                   "malformed request line (want METHOD "
                   "SP PATH SP HTTP/1.1)");
    }
    for (const char *c = line; c < sp1; c++) {
        if (!is_tchar(*c)) {
            return bad(msg, msglen, 400,
                       "malformed method in the request "
                       "line");
        }
    }
    if ((size_t)(line + n - (sp2 + 1)) != 8 ||
        strncmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        (sp2[8] != '0' && sp2[8] != '1')) {
        return bad(msg, msglen, 505,
                   "only HTTP/1.0 and HTTP/1.1 are "
                   "supported");
    }
    http11 = sp2[8] == '1';

    /* Header fields. */
    for (;;) {
        const char *colon, *v;
        size_t vn;
        n = next_line(&p, end, &line);
        if (n == 0) {
            break; /* the blank line */
        }
        if (line[0] == ' ' || line[0] == '\t') {
            return bad(msg, msglen, 400,
                       "folded header lines are not "
                       "accepted");
        }
        colon = memchr(line, ':', n);
        if (colon == NULL || colon == line) {
            return bad(msg, msglen, 400,
                       "a header line has no field name "
                       "and colon");
        }
        for (const char *c = line; c < colon; c++) {
            if (!is_tchar(*c)) {
                return bad(msg, msglen, 400,
                           "malformed header field name "
                           "(white space before the colon?)");
            }
        }
        v = colon + 1;
        vn = n - (size_t)(v - line);
        trim(&v, &vn);
        if (name_is(line, (size_t)(colon - line), "Host")) {
            n_host++;
        } else if (name_is(line, (size_t)(colon - line), "Content-Length")) {
            unsigned long long x = 0;
            n_clen++;
            if (vn == 0 || vn > 18) {
                return bad(msg, msglen, 400,
                           "Content-Length must be a "
                           "decimal number of bytes");
            }
            for (size_t i = 0; i < vn; i++) {
                if (v[i] < '0' || v[i] > '9') {
                    return bad(msg, msglen, 400,
                               "Content-Length must be a "
                               "decimal number of bytes");
                }
                x = x * 10 + (unsigned)(v[i] - '0');
            }
            (void)x;
        } else if (name_is(line, (size_t)(colon - line), "Transfer-Encoding")) {
            n_te++;
            if (!(vn == 7 && strncasecmp(v, "chunked", 7) == 0)) {
                return bad(msg, msglen, 400,
                           "Transfer-Encoding must be "
                           "'chunked'");
            }
        }
    }
    if (n_clen > 1) {
        return bad(msg, msglen, 400, "more than one Content-Length header");
    }
    if (n_te > 1 || (n_te > 0 && n_clen > 0)) {
        return bad(msg, msglen, 400,
                   "Content-Length and Transfer-Encoding "
                   "together (or Transfer-Encoding twice)");
    }
    if (n_host > 1) {
        return bad(msg, msglen, 400, "more than one Host header");
    }
    if (http11 && n_host == 0) {
        return bad(msg, msglen, 400,
                   "an HTTP/1.1 request must have a Host "
                   "header");
    }
    return 0;
}
