/*
 * p2mdecode: a decoder of the p2mnote ELF note (Spec/p2mnote.md, format 1.0, text 1.0.1) in C,
 * written from the Spec's text, to show that the Spec suffices and to cross-check the Swift codec.
 *
 *   cc -O2 -Wall -Wextra -o p2mdecode p2mdecode.c -llz4
 *   p2mdecode FILE          FILE holds one complete ELF note (at most 16 MiB is read)
 *
 * Checks the rules of Spec §8 in numeric order and reports the first that fails:
 * exit 1 with "error: rule N: ..." on stderr. On success prints the decoded note as JSON in the
 * shape of Spec §12 (header, records, frame_records, canonical_runs, entries), without
 * "description", and exits 0.
 */
#include <lz4frame.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(int rule, const char *msg) {
    fprintf(stderr, "error: rule %d: %s\n", rule, msg);
    exit(1);
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- growable text (the JSON is printed only once every rule has passed) ---- */
typedef struct { char *p; size_t n, cap; } sb_t;
static void sb_printf(sb_t *b, const char *fmt, ...) {
    for (;;) {
        va_list ap; va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) fail(0, "vsnprintf");
        if (b->p && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + (size_t)k + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) fail(0, "out of memory");
        b->p = q; b->cap = cap;
    }
}
static const char *sb_str(sb_t *b) { return b->p ? b->p : ""; }

/* ---- XXH64 (Spec Appendix A) ---- */
static const uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL, P3 = 0x165667B19E3779F9ULL,
                      P4 = 0x85EBCA77C2B2AE63ULL, P5 = 0x27D4EB2F165667C5ULL;
static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static uint64_t round1(uint64_t a, uint64_t in) { return rotl(a + in * P2, 31) * P1; }
static uint64_t merge1(uint64_t h, uint64_t a) { return (h ^ round1(0, a)) * P1 + P4; }

typedef struct { uint64_t v[4]; uint8_t buf[32]; size_t n; uint64_t total; } xxh64_t;
static void xxh_init(xxh64_t *s) { memset(s, 0, sizeof *s); s->v[0] = P1 + P2; s->v[1] = P2; s->v[2] = 0; s->v[3] = -P1; }
static void xxh_update(xxh64_t *s, const uint8_t *p, size_t len) {
    s->total += len;
    while (len > 0) {
        size_t k = 32 - s->n < len ? 32 - s->n : len;
        memcpy(s->buf + s->n, p, k); s->n += k; p += k; len -= k;
        if (s->n == 32) {
            for (int i = 0; i < 4; i++) s->v[i] = round1(s->v[i], le(s->buf + 8 * i, 8));
            s->n = 0;
        }
    }
}
static uint64_t xxh_final(const xxh64_t *s) {
    uint64_t h;
    if (s->total >= 32) {
        h = rotl(s->v[0], 1) + rotl(s->v[1], 7) + rotl(s->v[2], 12) + rotl(s->v[3], 18);
        for (int i = 0; i < 4; i++) h = merge1(h, s->v[i]);
    } else h = P5;
    h += s->total;
    size_t i = 0;
    for (; i + 8 <= s->n; i += 8) h = rotl(h ^ round1(0, le(s->buf + i, 8)), 27) * P1 + P4;
    if (i + 4 <= s->n) { h = rotl(h ^ (le(s->buf + i, 4) * P1), 23) * P2 + P3; i += 4; }
    for (; i < s->n; i++) h = rotl(h ^ (s->buf[i] * P5), 11) * P1;
    h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32;
    return h;
}
static void xxh_word(xxh64_t *s, uint64_t w) { uint8_t b[8]; for (int i = 0; i < 8; i++) b[i] = (uint8_t)(w >> (8 * i)); xxh_update(s, b, 8); }

/* ---- rule 16: pfn ranges that a shared list page constrains (Spec §5.1) ---- */
enum { MUST_INVALID = 1, MUST_IDENTITY = 2 };
typedef struct { uint64_t lo, hi; int type; } iv_t;
typedef struct { iv_t *v; size_t n, cap; } ivs_t;
static void ivs_add(ivs_t *s, uint64_t lo, uint64_t hi, int type) {
    if (s->n && s->v[s->n - 1].hi == lo && s->v[s->n - 1].type == type) { s->v[s->n - 1].hi = hi; return; }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        iv_t *q = realloc(s->v, s->cap * sizeof *q);
        if (!q) fail(0, "out of memory");
        s->v = q;
    }
    s->v[s->n++] = (iv_t){lo, hi, type};
}
static int iv_cmp(const void *a, const void *b) {
    uint64_t x = ((const iv_t *)a)->lo, y = ((const iv_t *)b)->lo;
    return x < y ? -1 : x > y;
}

/* ---- canonical runs (Spec §7), merged progression by progression ---- */
static int cls(uint64_t e) { return e == UINT64_MAX ? 4 : (int)(e >> 62); }
typedef struct {
    xxh64_t h; uint64_t pos, start, len, first, step; int stepKnown, c; uint64_t counts[5];
    sb_t *runs;                       /* print the canonical runs here (map stream) */
    uint64_t *ents; uint64_t nents;   /* keep the first nents entries (map stream, small maps) */
    /* frames stream: collect the pages backed by the shared pages */
    ivs_t *collect; uint64_t missing, identity, perPage, nrPfns;
    /* map stream: check those pages */
    const ivs_t *check; size_t ci; int bad16; uint64_t bad16Pfn;   /* bad16: the failing range's type */
} canon_t;

static void canon_emit(canon_t *k) {
    if (!k->len) return;
    uint64_t step = k->stepKnown ? k->step : 0;
    xxh_word(&k->h, k->start); xxh_word(&k->h, k->len); xxh_word(&k->h, k->first); xxh_word(&k->h, step);
    if (k->runs)
        sb_printf(k->runs, "%s{\"start\":%llu,\"length\":%llu,\"first\":\"0x%llx\",\"step\":%d}", k->runs->n ? "," : "",
                  (unsigned long long)k->start, (unsigned long long)k->len, (unsigned long long)k->first,
                  step == UINT64_MAX ? -1 : (int)step);
    k->len = 0;
}

/* Frames stream: the list pages among [pos, pos+len) (entries first + i*step) whose frame is a
 * shared page become pfn ranges that must be INVALID / IDENTITY of their own pfn. */
static void collect_shared(canon_t *k, uint64_t first, uint64_t len, uint64_t step) {
    uint64_t target[2] = {k->missing, k->identity};
    for (int t = 0; t < 2; t++) {
        uint64_t m = target[t], p0, n;
        if (m == UINT64_MAX) continue;                       /* unknown: no constraint */
        if (step == 0) { if (first != m) continue; p0 = k->pos; n = len; }
        else if (step == 1) { if (m < first || m - first >= len) continue; p0 = k->pos + (m - first); n = 1; }
        else { if (m > first || first - m >= len) continue; p0 = k->pos + (first - m); n = 1; }
        uint64_t lo = p0 * k->perPage, hi = (p0 + n) * k->perPage;
        if (hi > k->nrPfns) hi = k->nrPfns;                  /* the last page may be partial */
        if (lo < hi) ivs_add(k->collect, lo, hi, t == 0 ? MUST_INVALID : MUST_IDENTITY);
    }
}

/* Map stream: entries first + i*step at pfns [pos, pos+len) against the constrained ranges. */
static void check_shared(canon_t *k, uint64_t first, uint64_t len, uint64_t step) {
    const ivs_t *c = k->check;
    uint64_t end = k->pos + len;
    while (k->ci < c->n && c->v[k->ci].hi <= k->pos) k->ci++;
    for (size_t j = k->ci; j < c->n && c->v[j].lo < end && !k->bad16; j++) {
        uint64_t a = c->v[j].lo > k->pos ? c->v[j].lo : k->pos, b = c->v[j].hi < end ? c->v[j].hi : end;
        uint64_t va = first + (a - k->pos) * step;
        int ok = c->v[j].type == MUST_INVALID ? va == UINT64_MAX && (b - a == 1 || step == 0)
                                              : va == (a | (1ULL << 62)) && (b - a == 1 || step == 1);
        if (!ok) { k->bad16 = c->v[j].type; k->bad16Pfn = a; }
    }
}

/* Feed `len` entries first + i*step (step 0, 1 or UINT64_MAX), all of one class. */
static void canon_feed(canon_t *k, uint64_t first, uint64_t len, uint64_t step) {
    if (!len) return;
    int c = cls(first);
    k->counts[c == 3 ? 2 : c] += len;              /* classes 2 and 3 are both FOREIGN */
    if (k->collect) collect_shared(k, first, len, step);
    if (k->check) check_shared(k, first, len, step);
    for (uint64_t x = k->pos; x < k->nents && x - k->pos < len; x++) k->ents[x] = first + (x - k->pos) * step;
    int took = 0;
    if (k->len && c == k->c) {
        if (k->stepKnown) { if (first == k->first + k->step * (k->len - 1) + k->step) { k->len++; took = 1; } }
        else { uint64_t d = first - k->first; if (d == 0 || d == 1 || d == UINT64_MAX) { k->step = d; k->stepKnown = 1; k->len = 2; took = 1; } }
    }
    if (!took) { canon_emit(k); k->start = k->pos; k->len = 1; k->first = first; k->stepKnown = 0; k->c = c; }
    uint64_t rest = len - 1;
    if (rest) {
        if (!k->stepKnown) { k->step = step; k->stepKnown = 1; k->len += rest; }
        else if (k->step == step) k->len += rest;
        else { canon_emit(k); k->start = k->pos + 1; k->len = rest; k->first = first + step; k->step = step; k->stepKnown = rest >= 2; k->c = c; }
    }
    k->pos += len;
}

/* ---- varints (Spec §6.1) ---- */
typedef struct { const uint8_t *p; size_t n, i; } rd_t;
static int uvar(rd_t *r, uint64_t *out) {
    uint64_t v = 0; int shift = 0;
    for (int k = 1; k <= 10; k++) {
        if (r->i >= r->n) return 0;
        uint8_t b = r->p[r->i++];
        if (k == 10 && b != 1) return 0;            /* the 10th byte is exactly 0x01 */
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) { if (k > 1 && b == 0) return 0; *out = v; return 1; }
        shift += 7;
    }
    return 0;
}
static int svar(rd_t *r, uint64_t *out) { uint64_t z; if (!uvar(r, &z)) return 0; *out = (z >> 1) ^ (0 - (z & 1)); return 1; }

/* Spec §3: width 4 holds all ones, or a payload < 2^30 whose 32-bit slot is not 0xffffffff. */
static int representable(uint64_t e, int w) {
    return w == 8 || e == UINT64_MAX || ((e & 0x3FFFFFFFFFFFFFFFULL) <= 0x3FFFFFFF && e != 0xC00000003FFFFFFFULL);
}
static uint64_t normalise4(uint64_t s) { return s == 0xFFFFFFFFULL ? UINT64_MAX : ((s >> 30) << 62) | (s & 0x3FFFFFFF); }

static const char *kindName[] = {"", "INVALID", "IDENTITY", "ASC", "DESC", "REPEAT", "FOREIGN_ASC", "FOREIGN_DESC", "LITERAL", "LITERAL_RAW"};

/* Decode one stream (Spec §6, rule 14); returns the record count, prints records into `out`. */
static uint64_t decode_stream(const uint8_t *p, size_t n, uint64_t total, int width, int frames, canon_t *k, sb_t *out) {
    rd_t r = {p, n, 0};
    uint64_t cursor = 0, pos = 0, nrec = 0, maxF = width == 8 ? (1ULL << 62) - 1 : (1ULL << 30) - 1;
    while (pos < total) {
        if (r.i >= r.n) fail(14, "stream ended before its entry count");
        uint8_t t = r.p[r.i++];
        int kind = t & 15;
        uint64_t len = t >> 4, v = 0;
        if (kind == 0 || kind > 9) fail(14, "reserved record kind");
        if (!len) { if (!uvar(&r, &len)) fail(14, "bad varint length"); if (len == 0) fail(14, "length 0"); if (len < 16) fail(14, "long-form length < 16"); }
        if (len > total - pos) fail(14, "run past end");
        sb_printf(out, "%s{\"kind\":\"%s\",\"start\":%llu,\"length\":%llu", nrec ? "," : "", kindName[kind], (unsigned long long)pos, (unsigned long long)len);
        switch (kind) {
        case 1: canon_feed(k, UINT64_MAX, len, 0); break;
        case 2:
            if (frames) fail(14, "IDENTITY in the frames stream");
            if (pos + len - 1 > maxF) fail(14, "IDENTITY beyond maxFrame");
            canon_feed(k, pos | (1ULL << 62), len, 1); break;
        case 3: case 4: case 5: case 6: case 7: {
            uint64_t d; if (!svar(&r, &d)) fail(14, "bad varint operand");
            v = cursor + d;
            if ((kind == 6 || kind == 7) && frames) fail(14, "FOREIGN run in the frames stream");
            uint64_t step;
            if (kind == 3 || kind == 6) { if (v > maxF || len - 1 > maxF - v) fail(14, "ascending run passes maxFrame"); step = 1; cursor = v + len; }
            else if (kind == 4 || kind == 7) { if (v > maxF || len - 1 > v) fail(14, "descending run passes 0"); step = UINT64_MAX; cursor = v - len + 2; }
            else { if (v == UINT64_MAX || !representable(v, width)) fail(14, "REPEAT value not allowed"); step = 0; cursor = v + 1; }
            uint64_t first = (kind == 6 || kind == 7) ? v | (1ULL << 63) : v;
            canon_feed(k, first, len, step);
            sb_printf(out, ",\"first\":\"0x%llx\"", (unsigned long long)first);
            break; }
        default: /* 8 LITERAL, 9 LITERAL_RAW */
            if (len > (r.n - r.i) / (kind == 8 ? 1 : (uint64_t)width)) fail(14, "literal block truncated");
            for (uint64_t i = 0; i < len; i++) {
                uint64_t e;
                if (kind == 8) { uint64_t d; if (!svar(&r, &d)) fail(14, "bad literal varint"); e = cursor + d; if (!representable(e, width)) fail(14, "literal not representable"); }
                else { e = le(r.p + r.i, width); r.i += width; if (width == 4) e = normalise4(e); }
                if (i == 0) sb_printf(out, ",\"first\":\"0x%llx\"", (unsigned long long)e);
                canon_feed(k, e, 1, 0);
                cursor = e + 1;
            }
        }
        sb_printf(out, "}");
        nrec++; pos += len;
    }
    if (r.i != r.n) fail(14, "bytes after the last record");
    return nrec;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: p2mdecode NOTEFILE\n"); return 2; }
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 2; }
    static uint8_t note[1 << 24];
    size_t nn = fread(note, 1, sizeof note, f);
    fclose(f);
    /* Rule 1: the ELF note (the name's padding byte is not checked, §2). */
    if (nn < 24) fail(1, "too short for a note header and the padded name");
    uint64_t namesz = le(note, 4), descsz = le(note + 4, 4), type = le(note + 8, 4);
    if (namesz != 11 || memcmp(note + 12, "P2MNOTE-PV", 11)) fail(1, "owner is not P2MNOTE-PV");
    if (type != 0x50324D4E) fail(1, "type is not 0x50324d4e");
    if (descsz > nn - 24) fail(1, "n_descsz runs past the bytes available");
    const uint8_t *d = note + 24;
    if (descsz < 160) fail(1, "descriptor shorter than 160 bytes");
    /* Rules 2-9: the header. */
    if (memcmp(d, "p2mnote", 8)) fail(2, "bad magic");
    if (le(d + 8, 2) != 1) fail(2, "unsupported version");
    uint64_t hsz = le(d + 0x0C, 4);
    if (hsz < 160 || hsz > 4096 || hsz > descsz) fail(3, "bad header_size");
    xxh64_t hs; xxh_init(&hs); xxh_update(&hs, d, 0x98);
    uint8_t z[8] = {0}; xxh_update(&hs, z, 8); xxh_update(&hs, d + 0xA0, hsz - 0xA0);
    if (xxh_final(&hs) != le(d + 0x98, 8)) fail(4, "header checksum");
    uint32_t flags = (uint32_t)le(d + 0x10, 4);
    if (flags & 0xFFFE) fail(5, "unknown must-understand flag");
    if (d[0x17] || le(d + 0x1C, 4)) fail(5, "reserved field not zero");
    int width = d[0x15];
    if (d[0x14] != 12) fail(6, "page_shift not 12");
    if (width != 4 && width != 8) fail(6, "entry_width not 4 or 8");
    uint64_t nr = le(d + 0x20, 8), c[4] = {le(d + 0x28, 8), le(d + 0x30, 8), le(d + 0x38, 8), le(d + 0x40, 8)};
    if (nr == 0 || nr > (1ULL << 40) || (width == 4 && nr > (1ULL << 30))) fail(7, "nr_pfns out of range");
    uint64_t sum = 0; for (int i = 0; i < 4; i++) { if (c[i] > nr - sum) fail(8, "counts do not add up"); sum += c[i]; }
    if (sum != nr) fail(8, "counts do not add up");
    uint64_t nrec = le(d + 0x48, 8), enc = le(d + 0x50, 8), dec = le(d + 0x58, 8), mss = le(d + 0x60, 8), digest = le(d + 0x68, 8), nlf = le(d + 0x90, 8);
    uint64_t mp = le(d + 0x80, 8), idp = le(d + 0x88, 8);
    if (nrec == 0 || nrec > nr) fail(9, "nr_records out of range");
    if (enc != descsz - hsz) fail(10, "encoded_size != descsz - header_size");
    /* Rule 11, in exact arithmetic: 11 bytes per entry is the most a valid stream takes. */
    if (mss > dec) fail(11, "map_stream_size > decoded_size");
    if ((unsigned __int128)dec > (unsigned __int128)11 * ((unsigned __int128)nr + nlf)) fail(11, "decompression bomb: decoded_size > 11 x entries");
    if (dec > (1ULL << 32)) fail(11, "decoded_size above the 2^32 memory limit");
    int hasFrames = flags & 1;
    uint64_t wantFrames = (nr * width + 4095) / 4096;
    if (hasFrames && (nlf != wantFrames || mss == dec)) fail(12, "FRAMES inconsistent");
    if (!hasFrames && (nlf != 0 || mss != dec)) fail(12, "frames stream without FRAMES");
    /* Rule 13: exactly one LZ4 frame, descriptor checked by hand, then liblz4 (which checks the
     * header checksum, block sizes, block and content checksums). */
    const uint8_t *fr = d + hsz;
    if (enc < 7 || le(fr, 4) != 0x184D2204) fail(13, "not an LZ4 frame (skippable and legacy frames are refused)");
    uint8_t flg = fr[4], bd = fr[5];
    if (flg >> 6 != 1) fail(13, "LZ4 frame version is not 01");
    if ((flg & 0x02) || (bd & 0x8F)) fail(13, "LZ4 reserved bits set");
    if (flg & 0x01) fail(13, "LZ4 dictionary ID (no dictionary is defined)");
    if ((bd >> 4) < 4) fail(13, "LZ4 block size ID below 4");
    if (!(flg & 0x08) || !(flg & 0x04)) fail(13, "frame lacks content size or checksum");
    if (enc < 15 || le(fr + 6, 8) != dec) fail(13, "content size != decoded_size");
    uint8_t *out = malloc(dec ? dec : 1);
    if (!out) fail(11, "out of memory");
    LZ4F_dctx *ctx; LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION);
    size_t srcLeft = enc, dstLeft = dec, si = 0, di = 0, hint = 1;
    while (si < enc && hint) {
        size_t s = srcLeft, o = dstLeft;
        hint = LZ4F_decompress(ctx, out + di, &o, fr + si, &s, NULL);
        if (LZ4F_isError(hint)) fail(13, LZ4F_getErrorName(hint));
        si += s; di += o; srcLeft -= s; dstLeft -= o;
        if (!s && !o) break;
    }
    LZ4F_freeDecompressionContext(ctx);
    if (hint || si != enc || di != dec) fail(13, "frame size mismatch (truncated, too long, or bytes after the frame)");
    /* Rule 14 for both streams. The frames stream goes first: it says which pfn ranges rule 16
     * constrains, and the map stream is checked against them as it is decoded. */
    ivs_t cons = {0};
    sb_t recs = {0}, frecs = {0}, runs = {0};
    if (hasFrames) {
        canon_t fk; memset(&fk, 0, sizeof fk); xxh_init(&fk.h);
        fk.collect = &cons; fk.missing = mp; fk.identity = idp; fk.perPage = 4096 / (uint64_t)width; fk.nrPfns = nr;
        (void)decode_stream(out + mss, dec - mss, nlf, 8, 1, &fk, &frecs);
        if (cons.n > 1) qsort(cons.v, cons.n, sizeof *cons.v, iv_cmp);
    }
    canon_t k; memset(&k, 0, sizeof k); xxh_init(&k.h);
    static uint64_t ents[4096];
    k.runs = &runs; k.ents = ents; k.nents = nr <= 4096 ? nr : 0; k.check = &cons;
    uint64_t got = decode_stream(out, mss, nr, width, 0, &k, &recs);
    canon_emit(&k);
    uint64_t dg = xxh_final(&k.h);
    /* Rule 15: record count, counts per entry kind, digest. */
    if (got != nrec) fail(15, "record count differs");
    if (k.counts[0] != c[0] || k.counts[4] != c[1] || k.counts[1] != c[2] || k.counts[2] != c[3]) fail(15, "counts per entry kind differ");
    if (dg != digest) fail(15, "map digest differs");
    /* Rule 16: the shared pages. */
    if (mp != UINT64_MAX && idp != UINT64_MAX && mp == idp) fail(16, "missing_page_mfn = identity_page_mfn");
    if (k.bad16) {
        char m[160];
        snprintf(m, sizeof m, "pfn %llu is in a list page backed by the shared %s page but is not %s", (unsigned long long)k.bad16Pfn,
                 k.bad16 == MUST_INVALID ? "missing" : "identity", k.bad16 == MUST_INVALID ? "INVALID" : "IDENTITY of its own pfn");
        fail(16, m);
    }
    /* The decoded note, Spec §12 shape. */
    static const char *hexName[] = {"flags", "map_digest", "list_vaddr", "fll_mfn", "missing_page_mfn", "identity_page_mfn", "header_checksum"};
    uint64_t hexVal[] = {flags, digest, le(d + 0x70, 8), le(d + 0x78, 8), mp, idp, le(d + 0x98, 8)};
    static const char *intName[] = {"version_major", "version_minor", "header_size", "page_shift", "entry_width", "source", "domain_id",
                                    "nr_pfns", "count_mfn", "count_invalid", "count_identity", "count_foreign", "nr_records",
                                    "encoded_size", "decoded_size", "map_stream_size", "nr_list_frames"};
    uint64_t intVal[] = {le(d + 8, 2), le(d + 0x0A, 2), hsz, d[0x14], (uint64_t)width, d[0x16], le(d + 0x18, 4),
                         nr, c[0], c[1], c[2], c[3], nrec, enc, dec, mss, nlf};
    printf("{\"header\":{");
    for (size_t i = 0; i < sizeof hexVal / sizeof *hexVal; i++) printf("\"%s\":\"0x%llx\",", hexName[i], (unsigned long long)hexVal[i]);
    for (size_t i = 0; i < sizeof intVal / sizeof *intVal; i++) printf("%s\"%s\":%llu", i ? "," : "", intName[i], (unsigned long long)intVal[i]);
    printf("},\n\"records\":[%s],\n\"canonical_runs\":[%s]", sb_str(&recs), sb_str(&runs));
    if (hasFrames) printf(",\n\"frame_records\":[%s]", sb_str(&frecs));
    if (nr <= 4096) {
        printf(",\n\"entries\":[");
        for (uint64_t i = 0; i < nr; i++) printf("%s\"0x%llx\"", i ? "," : "", (unsigned long long)ents[i]);
        printf("]");
    }
    printf("}\n");
    free(out); free(recs.p); free(frecs.p); free(runs.p); free(cons.v);
    return 0;
}
