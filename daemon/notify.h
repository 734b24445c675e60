/* notify.h — tell systemd (Type=notify) about start-up and shutdown,
 * speaking the NOTIFY_SOCKET datagram protocol directly. */
#ifndef VD_NOTIFY_H
#define VD_NOTIFY_H

/* Send state (e.g. "READY=1") if NOTIFY_SOCKET is set; otherwise a no-op. */
void vd_notify(const char *state);

#endif
