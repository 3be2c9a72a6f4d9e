/* The peer for `p2m-bench kdump-read`: libkdumpfile's own C API reading the same pages.
 *
 *   libkdumpfile-read FILE < FRAMES      (one machine frame number a line)
 *
 * Reads each frame's 4096 bytes with kdump_read(KDUMP_MACHPHYSADDR) in the order given and
 * prints "reads N failed F seconds S checksum C" (C: a sum over the bytes, to compare with
 * p2mnote's reads of the same frames). */
#include <libkdumpfile/kdumpfile.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    kdump_ctx_t *ctx;
    int fd;
    static unsigned char buf[4096];
    uint64_t *frames = NULL, f, sum = 0;
    size_t n = 0, cap = 0, i, failed = 0;
    struct timespec t0, t1;

    if (argc != 2) { fprintf(stderr, "usage: libkdumpfile-read FILE < FRAMES\n"); return 2; }
    while (scanf("%" SCNu64, &f) == 1) {
        if (n == cap) { cap = cap ? 2 * cap : 1024; frames = realloc(frames, cap * sizeof *frames); if (!frames) return 2; }
        frames[n++] = f;
    }
    fd = open(argv[1], O_RDONLY);
    if (fd < 0) { perror(argv[1]); return 1; }
    ctx = kdump_new();
    if (!ctx || kdump_open_fd(ctx, fd) != KDUMP_OK) { fprintf(stderr, "libkdumpfile: %s\n", ctx ? kdump_get_err(ctx) : "kdump_new failed"); return 1; }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < n; i++) {
        size_t sz = sizeof buf, k;
        if (kdump_read(ctx, KDUMP_MACHPHYSADDR, frames[i] << 12, buf, &sz) != KDUMP_OK || sz != sizeof buf) { failed++; continue; }
        for (k = 0; k < sizeof buf; k += 64) sum += buf[k] + (uint64_t)k * buf[k + 1];
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("reads %zu failed %zu seconds %.6f checksum %" PRIu64 "\n", n, failed,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, sum);
    kdump_free(ctx);
    return 0;
}
