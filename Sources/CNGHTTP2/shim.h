#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>

/* epoll and eventfd do not import through Glibc, and struct epoll_event is packed; these
   helpers give the event loop plain integer and pointer arguments instead. */

static inline int cnghttp2_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static inline int cnghttp2_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

/* op: 1 add, 2 delete, 3 modify (EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD). */
static inline int cnghttp2_epoll_ctl(int epfd, int op, int fd, uint32_t events, void *ptr) {
    struct epoll_event event;
    event.events = events;
    event.data.ptr = ptr;
    return epoll_ctl(epfd, op, fd, &event);
}

/* Waits for at most 128 events and copies them out as two parallel arrays. */
static inline int cnghttp2_epoll_wait(int epfd, uint32_t *events, void **pointers, int max,
                                      int timeout) {
    struct epoll_event ready[128];
    if (max > 128) max = 128;
    int count = epoll_wait(epfd, ready, max, timeout);
    for (int i = 0; i < count; i++) {
        events[i] = ready[i].events;
        pointers[i] = ready[i].data.ptr;
    }
    return count;
}

/* Names the calling thread (at most 15 bytes are kept). */
static inline void cnghttp2_set_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }
