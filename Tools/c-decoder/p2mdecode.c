/*
 * p2mdecode: a decoder of the p2mnote ELF note (Spec/p2mnote.md, format 1.0) in C, written
 * from the Spec's text, to show that the Spec suffices and to cross-check the Swift codec.
 *
 *   cc -O2 -Wall -Wextra -o p2mdecode p2mdecode.c -llz4
 *   p2mdecode FILE          FILE holds one complete ELF note; prints a JSON summary
 *
 * Exit 0 when every rule of Spec §8 holds; 1 with "error: rule N: ..." on stderr otherwise.
 * 64-bit values that may exceed 2^53 are printed as "0x..." strings.
 */
#include <lz4frame.h>
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

/* ---- canonical runs (Spec §7), merged progression by progression ---- */
static int cls(uint64_t e) { return e == UINT64_MAX ? 4 : (int)(e >> 62); }
typedef struct { xxh64_t h; uint64_t pos, start, len, first, step; int stepKnown, c; uint64_t runs; uint64_t counts[5]; } canon_t;
static void canon_emit(canon_t *k) {
    if (!k->len) return;
    xxh_word(&k->h, k->start); xxh_word(&k->h, k->len); xxh_word(&k->h, k->first); xxh_word(&k->h, k->stepKnown ? k->step : 0);
    k->runs++; k->len = 0;
}
/* Feed `len` entries first + i*step (step 0, 1 or UINT64_MAX), all of one class. */
static void canon_feed(canon_t *k, uint64_t first, uint64_t len, uint64_t step) {
    if (!len) return;
    int c = cls(first);
    k->counts[c == 3 ? 2 : c] += len;              /* classes 2 and 3 are both FOREIGN */
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
        if (k == 10 && b > 1) return 0;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) { if (k > 1 && b == 0) return 0; *out = v; return 1; }
        shift += 7;
    }
    return 0;
}
static int svar(rd_t *r, uint64_t *out) { uint64_t z; if (!uvar(r, &z)) return 0; *out = (z >> 1) ^ (0 - (z & 1)); return 1; }

static int representable(uint64_t e, int w) { return w == 8 || e == UINT64_MAX || (e & 0x3FFFFFFFFFFFFFFFULL) <= 0x3FFFFFFF; }
static uint64_t normalise4(uint64_t s) { return s == 0xFFFFFFFFULL ? UINT64_MAX : ((s >> 30) << 62) | (s & 0x3FFFFFFF); }

static const char *kindName[] = {"", "INVALID", "IDENTITY", "ASC", "DESC", "REPEAT", "FOREIGN_ASC", "FOREIGN_DESC", "LITERAL", "LITERAL_RAW"};

/* Decode one stream (Spec §6); returns the record count. */
static uint64_t decode_stream(const uint8_t *p, size_t n, uint64_t total, int width, int frames, canon_t *k, int print) {
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
        if (print) printf("%s{\"kind\":\"%s\",\"start\":%llu,\"length\":%llu", nrec ? "," : "", kindName[kind], (unsigned long long)pos, (unsigned long long)len);
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
            if (print) printf(",\"first\":\"0x%llx\"", (unsigned long long)first);
            break; }
        default: /* 8 LITERAL, 9 LITERAL_RAW */
            if (len > (r.n - r.i) / (kind == 8 ? 1 : (uint64_t)width)) fail(14, "literal block truncated");
            for (uint64_t i = 0; i < len; i++) {
                uint64_t e;
                if (kind == 8) { uint64_t d; if (!svar(&r, &d)) fail(14, "bad literal varint"); e = cursor + d; if (!representable(e, width)) fail(14, "literal not representable"); }
                else { e = le(r.p + r.i, width); r.i += width; if (width == 4) e = normalise4(e); }
                if (i == 0 && print) printf(",\"first\":\"0x%llx\"", (unsigned long long)e);
                canon_feed(k, e, 1, 0);
                cursor = e + 1;
            }
        }
        if (print) printf("}");
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
    /* Rule 1: the ELF note. */
    if (nn < 12) fail(1, "too short for a note header");
    uint64_t namesz = le(note, 4), descsz = le(note + 4, 4), type = le(note + 8, 4);
    if (namesz != 11 || nn < 24 || memcmp(note + 12, "P2MNOTE-PV", 11)) fail(1, "owner is not P2MNOTE-PV");
    if (type != 0x50324D4E) fail(1, "type is not 0x50324d4e");
    if (descsz > nn - 24) fail(1, "descriptor runs past the file");
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
    if (nrec == 0 || nrec > nr) fail(9, "nr_records out of range");
    if (enc != descsz - hsz) fail(10, "encoded_size != descsz - header_size");
    if (mss > dec) fail(11, "map_stream_size > decoded_size");
    if (nlf > (1ULL << 40) || dec > 21 * (nr + nlf) || dec > (1ULL << 32)) fail(11, "decompression bomb");
    int hasFrames = flags & 1;
    uint64_t wantFrames = (nr * width + 4095) / 4096;
    if (hasFrames && (nlf != wantFrames || mss == dec)) fail(12, "FRAMES inconsistent");
    if (!hasFrames && (nlf != 0 || mss != dec)) fail(12, "frames stream without FRAMES");
    /* Rule 13: one LZ4 frame with content size and checksum. */
    const uint8_t *fr = d + hsz;
    if (enc < 7 || le(fr, 4) != 0x184D2204) fail(13, "not an LZ4 frame");
    if (!(fr[4] & 0x08) || !(fr[4] & 0x04)) fail(13, "frame lacks content size or checksum");
    if (enc < 14 || le(fr + 6, 8) != dec) fail(13, "content size != decoded_size");
    uint8_t *out = malloc(dec ? dec : 1);
    if (!out) fail(11, "out of memory");
    LZ4F_dctx *ctx; LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION);
    size_t srcLeft = enc, dstLeft = dec, si = 0, di = 0, hint = 1;
    while (si < enc && hint) {
        size_t s = srcLeft, o = dstLeft;
        hint = LZ4F_decompress(ctx, out + di, &o, fr + si, &s, NULL);
        if (LZ4F_isError(hint)) fail(13, "corrupt frame or checksum");
        si += s; di += o; srcLeft -= s; dstLeft -= o;
        if (!s && !o) break;
    }
    LZ4F_freeDecompressionContext(ctx);
    if (hint || si != enc || di != dec) fail(13, "frame size mismatch");
    /* Rules 14, 15. */
    canon_t k; memset(&k, 0, sizeof k); xxh_init(&k.h);
    printf("{\"nr_pfns\":%llu,\"entry_width\":%d,\"records\":[", (unsigned long long)nr, width);
    uint64_t got = decode_stream(out, mss, nr, width, 0, &k, 1);
    canon_emit(&k);
    uint64_t dg = xxh_final(&k.h);
    if (got != nrec) fail(15, "record count differs");
    if (k.counts[0] != c[0] || k.counts[4] != c[1] || k.counts[1] != c[2] || k.counts[2] != c[3]) fail(15, "counts differ");
    if (dg != digest) fail(15, "map digest differs");
    uint64_t frec = 0;
    if (hasFrames) { canon_t fk; memset(&fk, 0, sizeof fk); xxh_init(&fk.h); frec = decode_stream(out + mss, dec - mss, nlf, 8, 1, &fk, 0); }
    printf("],\"nr_records\":%llu,\"map_digest\":\"0x%llx\",\"canonical_runs\":%llu,\"count_mfn\":%llu,\"count_invalid\":%llu,"
           "\"count_identity\":%llu,\"count_foreign\":%llu,\"frame_records\":%llu}\n",
           (unsigned long long)got, (unsigned long long)dg, (unsigned long long)k.runs, (unsigned long long)c[0],
           (unsigned long long)c[1], (unsigned long long)c[2], (unsigned long long)c[3], (unsigned long long)frec);
    free(out);
    return 0;
}
