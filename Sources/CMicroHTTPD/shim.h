#ifndef CMICROHTTPD_SHIM_H
#define CMICROHTTPD_SHIM_H

#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <microhttpd.h>

/* Swift cannot call C variadic functions, so the few variadic entry points the Metrics module
 * needs are wrapped here with fixed arguments. Every symbol is prefixed `cmhd_`. */

/* Size of the buffer `cmhd_capture_log` writes into; the caller allocates it. */
#define CMHD_LOG_CAPACITY 512

/* An MHD_LogCallback that keeps the last message in the `char[CMHD_LOG_CAPACITY]` given as
 * `cls`, so a failed start can say why (bind errors are only reported through the log). */
static inline void cmhd_capture_log(void *cls, const char *format, va_list ap) {
    char *buffer = (char *)cls;
    int written = vsnprintf(buffer, CMHD_LOG_CAPACITY, format, ap);
    /* Drop the trailing newline MHD puts on its messages. */
    if (written > 0 && written < CMHD_LOG_CAPACITY && buffer[written - 1] == '\n') {
        buffer[written - 1] = '\0';
    }
}

/* Starts a daemon bound to exactly `address` (no wildcard fallback), with its own polling
 * thread, a cap on concurrent connections and an idle timeout. Returns NULL on failure, with
 * the reason in `log_buffer`. Wraps MHD_start_daemon. */
static inline struct MHD_Daemon *cmhd_start_daemon(
    unsigned int flags,
    const struct sockaddr *address,
    unsigned int connection_limit,
    unsigned int timeout_seconds,
    MHD_AccessHandlerCallback handler,
    void *handler_context,
    char *log_buffer
) {
    return MHD_start_daemon(
        flags | MHD_USE_ERROR_LOG, 0, NULL, NULL, handler, handler_context,
        MHD_OPTION_SOCK_ADDR, address,
        MHD_OPTION_CONNECTION_LIMIT, connection_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_seconds,
        MHD_OPTION_EXTERNAL_LOGGER, cmhd_capture_log, (void *)log_buffer,
        MHD_OPTION_END);
}

/* The port the daemon's listening socket is bound to, or 0 if unknown. Wraps
 * MHD_get_daemon_info(MHD_DAEMON_INFO_BIND_PORT). */
static inline uint16_t cmhd_bound_port(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info == NULL ? 0 : info->port;
}

#endif
