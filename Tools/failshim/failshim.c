/* failshim: an LD_PRELOAD library that makes the Nth mutating system call of a process fail,
 * for the fault-injection tests of p2m-inject (Tests/P2MToolsTests/SyscallFaultTests.swift).
 *
 * Counted calls: write (to fds above 2), pwrite/pwrite64, fsync, fdatasync, ftruncate/
 * ftruncate64, rename, renameat, renameat2, open/open64/openat/openat64 for writing (O_WRONLY,
 * O_RDWR or O_CREAT), and close of an fd that was opened for writing.
 *   FAILSHIM_AT=N        the Nth counted call fails (returns -1 with errno set) without being made
 *                        (close: made, then reported as failed, as Linux does on EIO)
 *   FAILSHIM_ERRNO=E     the errno (default ENOSPC)
 *   FAILSHIM_COUNT=FILE  at exit, the number of counted calls is written there
 * Build: cc -shared -fPIC -O1 -o failshim.so failshim.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static long fail_at = -1, seen;
static int fail_errno = ENOSPC;
static const char *count_path;
static unsigned char writable[65536];

__attribute__((constructor)) static void failshim_init(void) {
    const char *a = getenv("FAILSHIM_AT"), *e = getenv("FAILSHIM_ERRNO");
    fail_at = a ? atol(a) : -1;
    if (e) fail_errno = atoi(e);
    count_path = getenv("FAILSHIM_COUNT");
}

__attribute__((destructor)) static void failshim_fini(void) {
    if (!count_path) return;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", seen);
    long fd = syscall(SYS_openat, AT_FDCWD, count_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) { (void)!syscall(SYS_write, fd, buf, (size_t)n); syscall(SYS_close, fd); }
}

static int fail_now(void) {
    if (++seen == fail_at) { errno = fail_errno; return 1; }
    return 0;
}

#define REAL(name) static __typeof__(name) *real_##name; \
    if (!real_##name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static void mark(int fd, int flags) {
    if (fd >= 0 && fd < (int)sizeof writable) writable[fd] = (flags & (O_WRONLY | O_RDWR | O_CREAT)) != 0;
}

ssize_t write(int fd, const void *b, size_t n) { REAL(write); if (fd > 2 && fail_now()) return -1; return real_write(fd, b, n); }
ssize_t pwrite(int fd, const void *b, size_t n, off_t o) { REAL(pwrite); if (fail_now()) return -1; return real_pwrite(fd, b, n, o); }
ssize_t pwrite64(int fd, const void *b, size_t n, off64_t o) { REAL(pwrite64); if (fail_now()) return -1; return real_pwrite64(fd, b, n, o); }
int fsync(int fd) { REAL(fsync); if (fail_now()) return -1; return real_fsync(fd); }
int fdatasync(int fd) { REAL(fdatasync); if (fail_now()) return -1; return real_fdatasync(fd); }
int ftruncate(int fd, off_t l) { REAL(ftruncate); if (fail_now()) return -1; return real_ftruncate(fd, l); }
int ftruncate64(int fd, off64_t l) { REAL(ftruncate64); if (fail_now()) return -1; return real_ftruncate64(fd, l); }
int rename(const char *a, const char *b) { REAL(rename); if (fail_now()) return -1; return real_rename(a, b); }
int renameat(int da, const char *a, int db, const char *b) { REAL(renameat); if (fail_now()) return -1; return real_renameat(da, a, db, b); }
int renameat2(int da, const char *a, int db, const char *b, unsigned f) { REAL(renameat2); if (fail_now()) return -1; return real_renameat2(da, a, db, b, f); }

#define OPEN_BODY(call) \
    mode_t mode = 0; \
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); } \
    if ((flags & (O_WRONLY | O_RDWR | O_CREAT)) && fail_now()) return -1; \
    int fd = call; mark(fd, flags); return fd;

int open(const char *p, int flags, ...) { REAL(open); OPEN_BODY(real_open(p, flags, mode)) }
int open64(const char *p, int flags, ...) { REAL(open64); OPEN_BODY(real_open64(p, flags, mode)) }
int openat(int d, const char *p, int flags, ...) { REAL(openat); OPEN_BODY(real_openat(d, p, flags, mode)) }
int openat64(int d, const char *p, int flags, ...) { REAL(openat64); OPEN_BODY(real_openat64(d, p, flags, mode)) }

int close(int fd) {
    REAL(close);
    int w = fd >= 0 && fd < (int)sizeof writable && writable[fd];
    if (fd >= 0 && fd < (int)sizeof writable) writable[fd] = 0;
    if (w && fail_now()) { real_close(fd); errno = fail_errno; return -1; }
    return real_close(fd);
}
