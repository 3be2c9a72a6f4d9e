/* A C caller of libp2mnote that knows only the installed header (p2mnote.h) and the library.
 *
 *   api_check DUMP SYSTEM_MAP < EXPECTATIONS
 *
 * EXPECTATIONS, one a line, from the generator's manifest (an independent record of what the
 * dump holds):
 *   S VADDR PFN MFN HEXBYTES   a kernel virtual address, the frames it lies in, its bytes
 *   P PFN KIND FRAME           a p2m entry (KIND 0 mfn, 1 invalid, 2 identity)
 * Prints one line per finding and a summary; the test that runs it checks the lines. Also
 * checks the error paths (each must return a status and a message, never abort) and reads
 * from several threads at once on one handle. */
#include "p2mnote.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SAMPLES 256

struct sample { uint64_t vaddr, pfn, mfn; size_t len; unsigned char bytes[64]; };
static struct sample samples[MAX_SAMPLES];
static int nsamples;
static p2mnote *shared;
static int thread_bad[4];

static int hexbytes(const char *s, unsigned char *out, size_t cap, size_t *len) {
    size_t n = strlen(s), i;
    if (n % 2 || n / 2 > cap) return -1;
    for (i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (unsigned char)v;
    }
    *len = n / 2;
    return 0;
}

static void *reader(void *arg) {
    int t = (int)(intptr_t)arg, round, i;
    for (round = 0; round < 200; round++)
        for (i = 0; i < nsamples; i++) {
            unsigned char buf[64];
            size_t done = 0;
            struct sample *s = &samples[(i + t) % nsamples];
            if (p2mnote_read(shared, P2MNOTE_KVIRT, s->vaddr, buf, s->len, &done) != P2MNOTE_OK || done != s->len
                || memcmp(buf, s->bytes, s->len) != 0)
                thread_bad[t]++;
        }
    return NULL;
}

static void expect_error(const char *what, p2mnote_status st) {
    printf("error %s status %d message %s\n", what, (int)st, st == P2MNOTE_OK ? "(none)" : p2mnote_last_error());
}

int main(int argc, char **argv) {
    struct p2mnote_open_options o;
    struct p2mnote_info info;
    p2mnote *h = NULL;
    p2mnote_status st;
    char line[512];
    int sbad = 0, pbad = 0, np = 0, i;
    uint64_t root, nr, a;
    const char *how, *src, *loc, *text;

    if (argc != 3) { fprintf(stderr, "usage: api_check DUMP SYSTEM_MAP < EXPECTATIONS\n"); return 2; }
    printf("version %s\n", p2mnote_version());
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.system_map = argv[2];
    st = p2mnote_open(argv[1], &o, &h);
    if (st != P2MNOTE_OK) { printf("open failed %d %s\n", (int)st, p2mnote_last_error()); return 1; }

    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (p2mnote_get_info(h, &info) != P2MNOTE_OK) { printf("info failed %s\n", p2mnote_last_error()); return 1; }
    printf("info container %s page_size %u machine_bytes %" PRIu64 " symbols %" PRIu64 " domain %" PRId64 "\n",
           info.container, info.page_size, info.machine_bytes, info.symbol_count, info.domain);
    if (p2mnote_root(h, &root, &how) != P2MNOTE_OK) { printf("root failed %s\n", p2mnote_last_error()); return 1; }
    printf("root 0x%" PRIx64 " %s\n", root, how);
    if (p2mnote_p2m(h, &nr, &src, &loc) != P2MNOTE_OK) { printf("p2m failed %s\n", p2mnote_last_error()); return 1; }
    printf("p2m %" PRIu64 " %s\n", nr, src);
    if (p2mnote_banner(h, &text) != P2MNOTE_OK) { printf("banner failed %s\n", p2mnote_last_error()); return 1; }
    printf("banner %s\n", text);
    if (p2mnote_symbol(h, "linux_banner", &a) != P2MNOTE_OK) { printf("symbol failed %s\n", p2mnote_last_error()); return 1; }
    printf("symbol linux_banner 0x%" PRIx64 "\n", a);

    while (fgets(line, sizeof line, stdin)) {
        char hex[200];
        if (line[0] == 'S' && nsamples < MAX_SAMPLES) {
            struct sample *s = &samples[nsamples];
            struct p2mnote_walk w;
            unsigned char buf[64];
            size_t done = 0, cnt = 0;
            uint64_t pfns[4];
            if (sscanf(line, "S %" SCNu64 " %" SCNu64 " %" SCNu64 " %199s", &s->vaddr, &s->pfn, &s->mfn, hex) != 4
                || hexbytes(hex, s->bytes, sizeof s->bytes, &s->len) != 0) { printf("bad expectation line\n"); return 2; }
            nsamples++;
            /* the same bytes through all three spaces, and the walk lands in the expected frames */
            if (p2mnote_read(h, P2MNOTE_KVIRT, s->vaddr, buf, s->len, &done) != P2MNOTE_OK || memcmp(buf, s->bytes, s->len)) {
                printf("sample kvirt 0x%" PRIx64 " wrong: %s\n", s->vaddr, p2mnote_last_error()); sbad++; continue;
            }
            if (p2mnote_vtop(h, s->vaddr, &w) != P2MNOTE_OK || w.maddr >> 12 != s->mfn || w.pfn != s->pfn || w.nsteps < 2) {
                printf("sample vtop 0x%" PRIx64 " wrong: maddr 0x%" PRIx64 " pfn %" PRIu64 "\n", s->vaddr, w.maddr, w.pfn); sbad++; continue;
            }
            if (p2mnote_read(h, P2MNOTE_MACHINE, w.maddr, buf, s->len, &done) != P2MNOTE_OK || memcmp(buf, s->bytes, s->len)) {
                printf("sample machine 0x%" PRIx64 " wrong\n", w.maddr); sbad++; continue;
            }
            if (p2mnote_read(h, P2MNOTE_PPHYS, (s->pfn << 12) | (s->vaddr & 0xfff), buf, s->len, &done) != P2MNOTE_OK
                || memcmp(buf, s->bytes, s->len)) {
                printf("sample pphys pfn %" PRIu64 " wrong: %s\n", s->pfn, p2mnote_last_error()); sbad++; continue;
            }
            if (p2mnote_mfn_to_pfn(h, s->mfn, pfns, 4, &cnt) != P2MNOTE_OK || cnt != 1 || pfns[0] != s->pfn) {
                printf("sample m2p mfn %" PRIu64 " wrong (%zu)\n", s->mfn, cnt); sbad++; continue;
            }
        } else if (line[0] == 'P') {
            uint64_t pfn, frame, got;
            unsigned kind;
            p2mnote_entry_kind k;
            if (sscanf(line, "P %" SCNu64 " %u %" SCNu64, &pfn, &kind, &frame) != 3) { printf("bad expectation line\n"); return 2; }
            np++;
            if (p2mnote_pfn_to_mfn(h, pfn, &got, &k) != P2MNOTE_OK || (unsigned)k != kind || got != frame) {
                printf("pfn %" PRIu64 " wrong: kind %u frame 0x%" PRIx64 " (%s)\n", pfn, (unsigned)k, got, p2mnote_last_error()); pbad++;
            }
        }
    }
    printf("samples %d bad %d\n", nsamples, sbad);
    printf("pfns %d bad %d\n", np, pbad);

    /* Four threads read on one handle at once. */
    if (nsamples > 0) {
        pthread_t t[4];
        shared = h;
        for (i = 0; i < 4; i++) pthread_create(&t[i], NULL, reader, (void *)(intptr_t)i);
        for (i = 0; i < 4; i++) pthread_join(t[i], NULL);
        printf("threads bad %d\n", thread_bad[0] + thread_bad[1] + thread_bad[2] + thread_bad[3]);
    }

    /* Error paths: each a status and a message. */
    {
        unsigned char buf[16];
        size_t done = 99;
        uint64_t f;
        p2mnote_entry_kind k;
        p2mnote *bad = NULL;
        expect_error("unmapped", p2mnote_read(h, P2MNOTE_KVIRT, 0x1000, buf, sizeof buf, &done));
        printf("unmapped done %zu\n", done);
        expect_error("beyond-p2m", p2mnote_pfn_to_mfn(h, nr, &f, &k));
        expect_error("null-buffer", p2mnote_read(h, P2MNOTE_KVIRT, a, NULL, 16, &done));
        expect_error("bad-space", p2mnote_read(h, (p2mnote_space)7, a, buf, 16, &done));
        expect_error("unknown-symbol", p2mnote_symbol(h, "no_such_symbol_anywhere", &f));
        expect_error("missing-file", p2mnote_open("/nonexistent/dump", NULL, &bad));
        expect_error("directory", p2mnote_open("/", NULL, &bad));
        expect_error("not-a-dump", p2mnote_open(argv[2], NULL, &bad));
        o.flags = P2MNOTE_OPEN_DOMAIN;
        o.domain = 5;
        expect_error("domain", p2mnote_open(argv[1], &o, &bad));
        o.flags = 1u << 20;
        expect_error("flags", p2mnote_open(argv[1], &o, &bad));
        p2mnote_close(h);
        expect_error("after-close", p2mnote_read(h, P2MNOTE_KVIRT, a, buf, 16, &done));
        p2mnote_close(NULL);
    }
    printf("end\n");
    return 0;
}
