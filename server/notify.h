/* notify: tell a service manager (systemd's Type=notify, through
 * libsystemd's sd_notify) where the master is in its life. Each call does
 * nothing when $NOTIFY_SOCKET is unset, so handoffd runs the same anywhere. */
#ifndef HANDOFF_NOTIFY_H
#define HANDOFF_NOTIFY_H

/* Workers are up and the listener accepts: "READY=1". */
int notify_ready(void);
/* A reload (SIGHUP) has begun: "RELOADING=1"; notify_ready() ends it. */
int notify_reloading(void);
/* Graceful stop has begun: "STOPPING=1". */
int notify_stopping(void);

#endif
