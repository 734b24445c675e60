/* screen.h — private to api/: checks of a request's head (request line
 * and header fields) made on the raw bytes, before libmicrohttpd parses
 * them. They catch what libmicrohttpd 0.9.75 gets wrong: a NUL byte in
 * the request line (it truncates the path silently), a malformed
 * Content-Length (it answers twice), a missing Host or a repeated
 * Content-Length (accepted). Pure functions, unit-tested. */
#ifndef VD_API_SCREEN_H
#define VD_API_SCREEN_H

#include <stddef.h>

#define API_HEAD_MAX 16384 /* largest request head accepted, bytes */

/* Length of the head (through the blank line) in buf[0..len), or 0 if
 * it is not complete yet. */
size_t api_head_length(const char *buf, size_t len);

/* Check a complete head of len bytes. Returns 0 if it is acceptable,
 * else an HTTP status (400, 505) with a message in msg (msglen bytes). */
unsigned api_head_check(const char *head, size_t len, char *msg, size_t msglen);

#endif
