/* slowread: an LD_PRELOAD library that makes every pread(2) of SLOWREAD_MIN bytes or more (default
 * 4096) sleep SLOWREAD_US microseconds first (default 500000), so that a test can interrupt a
 * command while it is reading a dump (python/tests/test_cli.py, Ctrl-C at the prompt).
 * Build: cc -shared -fPIC -O1 -o slowread.so slowread.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static ssize_t (*real_pread)(int, void *, size_t, off_t);
static long slow_us = 500000, min_bytes = 4096;

__attribute__((constructor)) static void slowread_init(void) {
    const char *u = getenv("SLOWREAD_US"), *m = getenv("SLOWREAD_MIN");
    if (u) slow_us = atol(u);
    if (m) min_bytes = atol(m);
    real_pread = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
}

static void pause_a_while(void) {
    struct timespec t = {slow_us / 1000000, (slow_us % 1000000) * 1000};
    /* A signal (Ctrl-C) ends the sleep early, as it would a slow disk's read: fine either way. */
    nanosleep(&t, NULL);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off) {
    if ((long)n >= min_bytes) pause_a_while();
    return real_pread(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off) { return pread(fd, buf, n, off); }
