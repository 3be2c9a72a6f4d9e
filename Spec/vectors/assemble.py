#!/usr/bin/env python3
"""Hand-assembles p2mnote test vectors from Spec/p2mnote.md (format 1.0, text 1.0.1).

    python3 Spec/vectors/assemble.py          (re)write the vectors below into Spec/vectors/
    python3 Spec/vectors/assemble.py --check  only check that the files on disk are what this writes

Written from the Spec alone, sharing nothing with the Swift codec or the C decoder: its own XXH64
(Spec Appendix A), XXH32 (LZ4 frame format), varints (§6.1) and canonical runs (§7). Python 3
standard library only. LZ4 frames are assembled by hand; their blocks are stored uncompressed
(block-size word with bit 31 set), which the LZ4 frame format allows, except where a vector shows
a literal-only compressed block. Each field is written with the Spec section that defines it.

Good vectors get NAME.note and NAME.json (the JSON shape of Spec §12); the script decodes every
stream it assembled with its own decoder and checks the result against the map it meant to write.
Bad vectors get bad/NAME.note; the rule each breaks is in bad/README.md (and in BAD below).
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
M64 = (1 << 64) - 1
ALL_ONES = M64                     # §3 INVALID, normalised
IDB = 1 << 62                      # §3 identity bit (normalised)
FB = 1 << 63                       # §3 foreign bit (normalised)

# ------------------------------------------------------------------------------------------
# Appendix A: XXH64, seed 0.
P64 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)


def _rotl64(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def _r64(acc, lane):
    return (_rotl64((acc + lane * P64[1]) & M64, 31) * P64[0]) & M64


def xxh64(data, seed=0):
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P64[0] + P64[1]) & M64, (seed + P64[1]) & M64, seed, (seed - P64[0]) & M64]
        while i + 32 <= n:
            for k in range(4):
                v[k] = _r64(v[k], struct.unpack_from("<Q", data, i + 8 * k)[0])
            i += 32
        h = (_rotl64(v[0], 1) + _rotl64(v[1], 7) + _rotl64(v[2], 12) + _rotl64(v[3], 18)) & M64
        for k in range(4):
            h = ((h ^ _r64(0, v[k])) * P64[0] + P64[3]) & M64
    else:
        h = (seed + P64[4]) & M64
    h = (h + n) & M64
    while i + 8 <= n:
        h = (_rotl64(h ^ _r64(0, struct.unpack_from("<Q", data, i)[0]), 27) * P64[0] + P64[3]) & M64
        i += 8
    if i + 4 <= n:
        h = (_rotl64(h ^ ((struct.unpack_from("<I", data, i)[0] * P64[0]) & M64), 23) * P64[1] + P64[2]) & M64
        i += 4
    while i < n:
        h = (_rotl64(h ^ ((data[i] * P64[4]) & M64), 11) * P64[0]) & M64
        i += 1
    h ^= h >> 33; h = (h * P64[1]) & M64
    h ^= h >> 29; h = (h * P64[2]) & M64
    h ^= h >> 32
    return h


# XXH32 (LZ4 frame format: header checksum byte, block and content checksums), seed 0.
M32 = 0xFFFFFFFF
P32 = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1)


def _rotl32(x, r):
    return ((x << r) | (x >> (32 - r))) & M32


def _r32(acc, lane):
    return (_rotl32((acc + lane * P32[1]) & M32, 13) * P32[0]) & M32


def xxh32(data, seed=0):
    n, i = len(data), 0
    if n >= 16:
        v = [(seed + P32[0] + P32[1]) & M32, (seed + P32[1]) & M32, seed, (seed - P32[0]) & M32]
        while i + 16 <= n:
            for k in range(4):
                v[k] = _r32(v[k], struct.unpack_from("<I", data, i + 4 * k)[0])
            i += 16
        h = (_rotl32(v[0], 1) + _rotl32(v[1], 7) + _rotl32(v[2], 12) + _rotl32(v[3], 18)) & M32
    else:
        h = (seed + P32[4]) & M32
    h = (h + n) & M32
    while i + 4 <= n:
        h = (_rotl32((h + struct.unpack_from("<I", data, i)[0] * P32[2]) & M32, 17) * P32[3]) & M32
        i += 4
    while i < n:
        h = (_rotl32((h + data[i] * P32[4]) & M32, 11) * P32[0]) & M32
        i += 1
    h ^= h >> 15; h = (h * P32[1]) & M32
    h ^= h >> 13; h = (h * P32[2]) & M32
    h ^= h >> 16
    return h


assert xxh64(b"") == 0xEF46DB3751D8E999 and xxh64(b"abc") == 0x44BC2CF5AD770999   # Appendix A
assert xxh32(b"") == 0x02CC5D05 and xxh32(b"abc") == 0x32D153FF                    # xxHash's own

# ------------------------------------------------------------------------------------------
# §6.1 integers.


def uvar(v):
    """§6.1 uvar: unsigned LEB128, minimal."""
    assert 0 <= v <= M64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(d):
    """§6.1 svar: d is taken modulo 2^64 as a signed 64-bit value; z = (d << 1) ^ (d >> 63)."""
    d &= M64
    s = d - (1 << 64) if d >> 63 else d
    return ((s << 1) ^ (s >> 63)) & M64


def svar(d):
    return uvar(zigzag(d))


# §3 entries.
def entry_class(e):
    return 4 if e == ALL_ONES else e >> 62


def kind_of(e):
    """§3 kind (classes 2 and 3 are both FOREIGN)."""
    c = entry_class(e)
    return {0: "mfn", 1: "identity", 2: "foreign", 3: "foreign", 4: "invalid"}[c]


def representable(e, width):
    """§3: every value for width 8; for width 4 all ones, or a payload < 2^30 whose 32-bit form
    is not 0xffffffff (which excludes 0xC00000003FFFFFFF)."""
    if width == 8 or e == ALL_ONES:
        return True
    return (e & (IDB - 1)) < (1 << 30) and e != 0xC00000003FFFFFFF


def stored4(e):
    """§3 normalised -> 32-bit slot (representable values only)."""
    assert representable(e, 4)
    return 0xFFFFFFFF if e == ALL_ONES else ((e >> 62) << 30) | (e & 0x3FFFFFFF)


def normalise4(s):
    """§3 32-bit slot -> normalised."""
    return ALL_ONES if s == 0xFFFFFFFF else ((s >> 30) << 62) | (s & 0x3FFFFFFF)


# ------------------------------------------------------------------------------------------
# §6.3 record assembly. Kind codes:
INVALID, IDENTITY, ASC, DESC, REPEAT, FOREIGN_ASC, FOREIGN_DESC, LITERAL, LITERAL_RAW = range(1, 10)
KIND_NAME = {1: "INVALID", 2: "IDENTITY", 3: "ASC", 4: "DESC", 5: "REPEAT", 6: "FOREIGN_ASC",
             7: "FOREIGN_DESC", 8: "LITERAL", 9: "LITERAL_RAW"}


class Asm:
    """Writes one record stream byte by byte. Each method is one §6.3 record; the cursor is the
    §6.2 one (what the decoder predicts), kept here so that operands can be written as
    'value − cursor'."""

    def __init__(self, width):
        self.width = width
        self.b = bytearray()
        self.cursor = 0            # §6.2: 0 at the start of each stream

    def tag(self, kind, length):
        # §6.3 tag: low 4 bits kind, high 4 bits n; n = 0 -> uvar length (≥ 16) follows.
        if 1 <= length <= 15:
            self.b.append(kind | (length << 4))
        else:
            assert length >= 16
            self.b.append(kind)
            self.b += uvar(length)

    def invalid(self, n):                 # §6.3 kind 0x1, no operand, cursor unchanged
        self.tag(INVALID, n)

    def identity(self, n):                # §6.3 kind 0x2, no operand, cursor unchanged
        self.tag(IDENTITY, n)

    def run(self, kind, n, v):
        # §6.3 kinds 0x3-0x7: svar (v − cursor) (§6.2), then the kind's cursor update.
        self.tag(kind, n)
        self.b += svar(v - self.cursor)
        if kind in (ASC, FOREIGN_ASC):
            self.cursor = (v + n) & M64              # cursor = v + length
        elif kind in (DESC, FOREIGN_DESC):
            self.cursor = (v - n + 2) & M64          # cursor = v − length + 2
        else:
            self.cursor = (v + 1) & M64              # REPEAT: cursor = v + 1

    def literal(self, values):
        # §6.3 kind 0x8: length × svar (E − cursor); after each, cursor = E + 1.
        self.tag(LITERAL, len(values))
        for e in values:
            self.b += svar(e - self.cursor)
            self.cursor = (e + 1) & M64

    def literal_raw(self, values):
        # §6.3 kind 0x9: length × stored slot, w bytes little-endian; after each, cursor = E + 1.
        self.tag(LITERAL_RAW, len(values))
        for e in values:
            self.b += struct.pack("<Q", e) if self.width == 8 else struct.pack("<I", stored4(e))
            self.cursor = (e + 1) & M64

    def raw(self, data):                  # bytes written as they are (for broken streams)
        self.b += bytes(data)


def literal_sizes(values, cursor, width):
    """§9 rule 4: bytes of the block as LITERAL and as LITERAL_RAW (tag and length included)."""
    tagb = 1 if len(values) <= 15 else 1 + len(uvar(len(values)))
    lit = 0
    for e in values:
        lit += len(svar(e - cursor))
        cursor = (e + 1) & M64
    return tagb + lit, tagb + width * len(values)


# ------------------------------------------------------------------------------------------
# An independent §6 decoder, used to check what was assembled and to write the JSON records.

class StreamFault(Exception):
    pass


def read_uvar(b, i):
    v, shift = 0, 0
    for k in range(10):
        if i >= len(b):
            raise StreamFault("truncated varint")
        x = b[i]; i += 1
        if k == 9 and x != 1:
            raise StreamFault("10th varint byte must be 0x01")
        v |= (x & 0x7F) << shift
        if not x & 0x80:
            if k > 0 and x == 0:
                raise StreamFault("non-minimal varint")
            return v, i
        shift += 7
    raise StreamFault("varint longer than 10 bytes")


def decode_stream(b, width, total, frames):
    """Returns (records, entries); raises StreamFault on a rule-14 fault."""
    max_frame = (1 << 62) - 1 if width == 8 else (1 << 30) - 1
    i, pos, cursor = 0, 0, 0
    recs, ents = [], []
    while pos < total:
        if i >= len(b):
            raise StreamFault("stream ended early")
        t = b[i]; i += 1
        kind, n = t & 15, t >> 4
        if not 1 <= kind <= 9:
            raise StreamFault("reserved kind")
        if n == 0:
            n, i = read_uvar(b, i)
            if n < 16:
                raise StreamFault("long-form length < 16")
        if n > total - pos:
            raise StreamFault("run past end")
        rec = {"kind": KIND_NAME[kind], "start": pos, "length": n}
        vals = []
        if kind == INVALID:
            vals = [ALL_ONES] * n
        elif kind == IDENTITY:
            if frames or pos + n - 1 > max_frame:
                raise StreamFault("IDENTITY not allowed")
            vals = [(pos + k) | IDB for k in range(n)]
        elif kind <= FOREIGN_DESC:
            z, i = read_uvar(b, i)
            d = (z >> 1) ^ ((-(z & 1)) & M64)
            v = (cursor + d) & M64
            if kind in (FOREIGN_ASC, FOREIGN_DESC) and frames:
                raise StreamFault("FOREIGN run in the frames stream")
            if kind in (ASC, FOREIGN_ASC):
                if v > max_frame or n - 1 > max_frame - v:
                    raise StreamFault("ascending run passes maxFrame")
                vals = [v + k for k in range(n)]; cursor = (v + n) & M64
            elif kind in (DESC, FOREIGN_DESC):
                if v > max_frame or n - 1 > v:
                    raise StreamFault("descending run passes 0")
                vals = [v - k for k in range(n)]; cursor = (v - n + 2) & M64
            else:
                if v == ALL_ONES or not representable(v, width):
                    raise StreamFault("REPEAT value not allowed")
                vals = [v] * n; cursor = (v + 1) & M64
            if kind in (FOREIGN_ASC, FOREIGN_DESC):
                vals = [x | FB for x in vals]
        else:
            for _ in range(n):
                if kind == LITERAL:
                    z, i = read_uvar(b, i)
                    e = (cursor + ((z >> 1) ^ ((-(z & 1)) & M64))) & M64
                    if not representable(e, width):
                        raise StreamFault("LITERAL not representable")
                else:
                    if i + width > len(b):
                        raise StreamFault("truncated LITERAL_RAW")
                    s = int.from_bytes(b[i:i + width], "little"); i += width
                    e = s if width == 8 else normalise4(s)
                vals.append(e); cursor = (e + 1) & M64
        if kind not in (INVALID, IDENTITY):
            rec["first"] = hex(vals[0])
        recs.append(rec)
        ents += vals
        pos += n
    if i != len(b):
        raise StreamFault("bytes after the last record")
    return recs, ents


def canonical_runs(e):
    """§7, entry by entry, exactly as the Spec's pseudocode."""
    runs, i, n = [], 0, len(e)
    while i < n:
        first, step, j = e[i], 0, i + 1
        if j < n and entry_class(e[j]) == entry_class(first) and (e[j] - first) & M64 in (0, 1, M64):
            step = (e[j] - first) & M64
            while j < n and entry_class(e[j]) == entry_class(first) and e[j] == (e[j - 1] + step) & M64:
                j += 1
        runs.append((i, j - i, first, step))
        i = j
    return runs


def digest_of(runs):
    """§7: XXH64 of the 32-byte little-endian serialisation of every run."""
    return xxh64(b"".join(struct.pack("<QQQQ", *r) for r in runs))


def counts_of(e):
    c = {"mfn": 0, "invalid": 0, "identity": 0, "foreign": 0}
    for x in e:
        c[kind_of(x)] += 1
    return c


# ------------------------------------------------------------------------------------------
# Appendix B / rule 13: LZ4 frames assembled by hand (LZ4 Frame Format 1.6.x).

def lz4_frame(content, bsid=4, independent=True, block_checksums=False, content_size=True,
              content_checksum=True, dict_id=None, blocks=None, version=1, flg_extra=0, bd_extra=0):
    """One LZ4 frame of `content`. `blocks` lists (kind, bytes) with kind 'raw' (uncompressed:
    Block Size bit 31 set) or 'lz4' (bytes are an LZ4 block, stored as given); default: the
    whole content as one uncompressed block."""
    if blocks is None:
        blocks = [("raw", content)]
    flg = (version << 6)                              # FLG bits 7-6: version (01)
    flg |= 0x20 if independent else 0                 # bit 5: B.Indep
    flg |= 0x10 if block_checksums else 0             # bit 4: B.Checksum
    flg |= 0x08 if content_size else 0                # bit 3: C.Size
    flg |= 0x04 if content_checksum else 0            # bit 2: C.Checksum
    flg |= 0x01 if dict_id is not None else 0         # bit 0: DictID
    flg |= flg_extra                                  # bit 1 is reserved (must be 0)
    bd = (bsid << 4) | bd_extra                       # BD bits 6-4: block maximum size ID
    desc = bytes([flg, bd])
    if content_size:
        desc += struct.pack("<Q", len(content))       # Content Size, 8 bytes LE
    if dict_id is not None:
        desc += struct.pack("<I", dict_id)            # Dictionary ID, 4 bytes LE
    hc = (xxh32(desc) >> 8) & 0xFF                     # HC = second byte of XXH32(descriptor)
    out = struct.pack("<I", 0x184D2204) + desc + bytes([hc])    # magic 04 22 4d 18
    for kind, data in blocks:
        word = len(data) | (0x80000000 if kind == "raw" else 0)  # Block Size (bit 31 = raw)
        out += struct.pack("<I", word) + data
        if block_checksums:
            out += struct.pack("<I", xxh32(data))     # Block Checksum: XXH32 of the block's data
    out += struct.pack("<I", 0)                        # EndMark 0x00000000
    if content_checksum:
        out += struct.pack("<I", xxh32(content))      # Content Checksum: XXH32 of the content
    return out


# ------------------------------------------------------------------------------------------
# §4 descriptor header and §2 ELF note.

HEADER_FIELDS = [  # (offset, size, name) — §4
    (0x08, 2, "version_major"), (0x0A, 2, "version_minor"), (0x0C, 4, "header_size"),
    (0x10, 4, "flags"), (0x14, 1, "page_shift"), (0x15, 1, "entry_width"), (0x16, 1, "source"),
    (0x17, 1, "reserved0"), (0x18, 4, "domain_id"), (0x1C, 4, "reserved1"), (0x20, 8, "nr_pfns"),
    (0x28, 8, "count_mfn"), (0x30, 8, "count_invalid"), (0x38, 8, "count_identity"),
    (0x40, 8, "count_foreign"), (0x48, 8, "nr_records"), (0x50, 8, "encoded_size"),
    (0x58, 8, "decoded_size"), (0x60, 8, "map_stream_size"), (0x68, 8, "map_digest"),
    (0x70, 8, "list_vaddr"), (0x78, 8, "fll_mfn"), (0x80, 8, "missing_page_mfn"),
    (0x88, 8, "identity_page_mfn"), (0x90, 8, "nr_list_frames"), (0x98, 8, "header_checksum"),
]
FLAG_FRAMES, FLAG_IDENTITY_KNOWN, FLAG_CROSS_CHECKED = 1 << 0, 1 << 16, 1 << 17   # §4.1
HEX_FIELDS = {"flags", "map_digest", "list_vaddr", "fll_mfn", "missing_page_mfn",
              "identity_page_mfn", "header_checksum"}                          # §12


def header_bytes(h, fix_checksum=True):
    assert h["header_size"] == 160                     # version 1.0: 160 bytes
    b = bytearray(160)
    b[0:8] = b"p2mnote\0"                              # 0x00 magic
    for off, size, name in HEADER_FIELDS:
        b[off:off + size] = (h[name] & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    if fix_checksum:
        b[0x98:0xA0] = bytes(8)                        # 0x98 read as 0 ...
        s = xxh64(bytes(b))
        b[0x98:0xA0] = struct.pack("<Q", s)            # ... XXH64 of [0, header_size)
        h["header_checksum"] = s
    return bytes(b)


def elf_note(desc, descsz=None):
    # §2: Elf64_Nhdr n_namesz 11, n_descsz, n_type 0x50324D4E; name "P2MNOTE-PV\0" + 1 pad byte
    # (zero, §2); the descriptor; zero padding to a multiple of 4.
    n = struct.pack("<III", 11, len(desc) if descsz is None else descsz, 0x50324D4E)
    n += b"P2MNOTE-PV\0" + b"\0"
    n += desc + bytes(-len(desc) % 4)
    return n


def base_header(width, nr_pfns, **kw):
    h = {"version_major": 1, "version_minor": 0, "header_size": 160, "flags": 0, "page_shift": 12,
         "entry_width": width, "source": 4, "reserved0": 0, "domain_id": 0xFFFFFFFF, "reserved1": 0,
         "nr_pfns": nr_pfns, "count_mfn": 0, "count_invalid": 0, "count_identity": 0,
         "count_foreign": 0, "nr_records": 0, "encoded_size": 0, "decoded_size": 0,
         "map_stream_size": 0, "map_digest": 0, "list_vaddr": 0, "fll_mfn": ALL_ONES,
         "missing_page_mfn": ALL_ONES, "identity_page_mfn": ALL_ONES, "nr_list_frames": 0,
         "header_checksum": 0}
    h.update(kw)
    return h


def describe_map(h, entries, map_stream, nr_records):
    """Fill the header fields that describe the map (§4): counts, nr_records, digest, sizes."""
    c = counts_of(entries)
    h.update(count_mfn=c["mfn"], count_invalid=c["invalid"], count_identity=c["identity"],
             count_foreign=c["foreign"], nr_records=nr_records,
             map_digest=digest_of(canonical_runs(entries)), map_stream_size=len(map_stream))


def build(h, map_stream, frames_stream=b"", frame=None, **lz4opts):
    """Descriptor = §4 header + §5 payload (one LZ4 frame of map ‖ frames stream)."""
    payload = bytes(map_stream) + bytes(frames_stream)
    h["decoded_size"] = len(payload)
    if frame is None:
        frame = lz4_frame(payload, **lz4opts)
    h["encoded_size"] = len(frame)
    return header_bytes(h) + frame


# ------------------------------------------------------------------------------------------
# Outputs.

GOOD, BAD = {}, {}   # name -> bytes; BAD name -> (rule, bytes)


def good(name, description, h, entries, map_asm, frames_asm=None, frame_entries=None, **lz4opts):
    """Check what was assembled with the independent decoder, then write NOTE and JSON."""
    w = h["entry_width"]
    recs, ents = decode_stream(bytes(map_asm.b), w, h["nr_pfns"], False)
    assert ents == entries, name + ": the assembled map stream does not say what was meant"
    describe_map(h, entries, map_asm.b, len(recs))
    frecs = None
    if frames_asm is not None:
        frecs, fents = decode_stream(bytes(frames_asm.b), 8, h["nr_list_frames"], True)
        assert fents == frame_entries, name + ": the frames stream does not say what was meant"
        assert h["flags"] & FLAG_FRAMES
    desc = build(h, map_asm.b, frames_asm.b if frames_asm else b"", **lz4opts)
    assert h["decoded_size"] <= 11 * (h["nr_pfns"] + h["nr_list_frames"])   # rule 11
    GOOD[name] = elf_note(desc)
    j = {"description": description,
         "header": {k: (hex(v) if k in HEX_FIELDS else v) for k, v in h.items()
                    if k not in ("reserved0", "reserved1")},
         "records": recs,
         "canonical_runs": [{"start": s, "length": n, "first": hex(f), "step": -1 if st == M64 else st}
                            for s, n, f, st in canonical_runs(entries)]}
    if frecs is not None:
        j["frame_records"] = frecs
    if len(entries) <= 4096:
        j["entries"] = [hex(x) for x in entries]
    GOOD[name + ".json"] = (json.dumps(j, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def bad(name, rule, note):
    BAD[name] = (rule, note)


# ==========================================================================================
# The worked example of §11 (its map stream, built here by hand), reused by the bad vectors.

def worked_example():
    e = [0x1000, 0x1001] + [p | IDB for p in (2, 3, 4)] + [0x2002, 0x2001, 0x2000, 0x77, 0x10] + [ALL_ONES] * 14
    a = Asm(8)
    a.run(ASC, 2, 0x1000)          # 23 80 40      ASC 2, svar 0x1000 - 0
    a.identity(3)                  # 32            IDENTITY 3 (pfns 2-4)
    a.run(DESC, 3, 0x2002)         # 34 80 40      DESC 3, svar 0x2002 - 0x1002
    a.literal([0x77, 0x10])        # 28 93 7e cf 01
    a.invalid(14)                  # e1
    assert bytes(a.b) == bytes.fromhex("23804032348040 28937ecf01 e1".replace(" ", ""))
    return e, a


WE_ENTRIES, WE_ASM = worked_example()
WE_STREAM = bytes(WE_ASM.b)


def we_header(**kw):
    h = base_header(8, 24, **kw)
    describe_map(h, WE_ENTRIES, WE_STREAM, 5)
    return h


def we_note(h=None, frame=None, **lz4opts):
    """A worked-example note with a hand-made frame (variants for rule 13)."""
    h = h or we_header()
    return elf_note(build(h, WE_STREAM, frame=frame, **lz4opts))


# The worked example itself was made by the Swift encoder with liblz4; this rebuilds it from
# §11 alone (the frame liblz4 made there is one uncompressed block) and must match byte for byte.
WE_REBUILT = we_note()


# ==========================================================================================
# Good vectors.

def v_literal_raw_w8():
    # §9 rule 4 at width 8: four singletons whose LITERAL form (9-10 bytes each) is longer than
    # 8 raw bytes, then a short ASC chained through the cursor left by the raw block, then INVALID.
    lits = [0x3FFFFFFFFFFFF000, 0x5, 0xC000000000000007, 0x4000000000000009]
    e = lits + [0x100, 0x101] + [ALL_ONES] * 10
    a = Asm(8)
    lit, raw = literal_sizes(lits, a.cursor, 8)
    assert raw < lit, (lit, raw)   # §9 rule 4 picks LITERAL_RAW
    a.literal_raw(lits)            # 49, then 4 × 8 bytes little-endian (§6.3 kind 0x9)
    a.run(ASC, 2, 0x100)           # 23, svar(0x100 − (0x4000000000000009 + 1))
    a.invalid(10)                  # a1
    good("literal-raw-w8", "LITERAL_RAW at width 8 (§9 rule 4: raw is shorter), class 3 and a "
         "not-own identity value inside it, the cursor carried out of a raw block",
         base_header(8, len(e), source=5), e, a)


def v_guest32_edges():
    # §3 at width 4: the largest value of each class; class 3's largest is 0xC00000003FFFFFFE
    # (0xC00000003FFFFFFF would be the slot 0xffffffff = INVALID, so it is not representable).
    lits = [0xC00000003FFFFFFE, 0x800000003FFFFFFF, 0x400000003FFFFFFF, 0x3FFFFFFF]
    e = lits + [ALL_ONES] * 4
    a = Asm(4)
    lit, raw = literal_sizes(lits, a.cursor, 4)
    assert raw < lit
    a.literal_raw(lits)            # 49, slots fe ff ff ff, ff ff ff bf, ff ff ff 7f, ff ff ff 3f
    assert bytes(a.b[1:]) == bytes.fromhex("feffffff ffffffbf ffffff7f ffffff3f".replace(" ", ""))
    a.invalid(4)                   # 41
    good("guest32-edges", "entry_width 4: the largest value of each class as LITERAL_RAW slots "
         "(class 3 stops at 0xc00000003ffffffe, §3); LZ4 block size ID 6",
         base_header(4, len(e), domain_id=3), e, a, bsid=6)


def v_max_size():
    # Rule 11's bound is tight: 4 one-entry LITERAL records with 10-byte svars = 11 bytes/entry.
    e = [FB, 0, FB, 0]
    a = Asm(8)
    for v in e:
        a.literal([v])             # 18 + 10 bytes: |v − cursor| ≥ 2^63 − 1 every time
    assert len(a.b) == 11 * len(e)
    good("max-size", "decoded_size = 11 × nr_pfns exactly (rule 11's bound is reached): one-entry "
         "LITERAL records with 10-byte svars whose 10th byte is 0x01", base_header(8, len(e)), e, a)


def v_lz4_frame_options():
    # Rule 13's accepted LZ4 options: linked blocks, block checksums, block size ID 7, a
    # literal-only LZ4-compressed block, an empty uncompressed block (80 00 00 00, not an EndMark),
    # partial blocks. Same map as the worked example (same digest).
    h = we_header(source=4)
    blocks = [("lz4", bytes([0x50]) + WE_STREAM[0:5]),   # LZ4 block: token 0x50 = 5 literals
              ("raw", b""),                               # empty uncompressed block
              ("raw", WE_STREAM[5:13])]
    a = Asm(8); a.raw(WE_STREAM)
    good("lz4-frame-options", "the worked example's map in an LZ4 frame with linked blocks, block "
         "checksums, block size ID 7, a compressed, an empty and an uncompressed block (rule 13 "
         "accepts all of these)", h, WE_ENTRIES, a, bsid=7, independent=False,
         block_checksums=True, blocks=blocks)


def v_host_domu_m2p():
    # Format 1.1 (§2, §4.2, §10): a domU's note from a host dump's Xen tables: source 7,
    # version_minor 1, the domain id recorded; no IDENTITY_KNOWN (the M2P cannot tell identity).
    entries = [0x40000 + i for i in range(300)] + [ALL_ONES] * 100 + [0x50000 + i for i in range(112)]
    a = Asm(8)
    a.run(ASC, 300, 0x40000)
    a.invalid(100)
    a.run(ASC, 112, 0x50000)
    h = base_header(8, 512, version_minor=1, source=7, domain_id=5)
    good("host-domu-m2p", "format 1.1: a domU's map rebuilt from a host dump's frame table and M2P "
         "(source 7, version_minor 1, domain_id 5): a 1.0 decoder reads it too", h, entries, a)


def shared_pages_note(map_asm, entries, name=None, description=None, bad_rule=None):
    # §5.1 / rule 16: 2148 pfns at width 8 = 5 list pages of 512 entries, the last partial.
    #   page 0 private (0x5000): ASC; page 1 the shared identity page (0x5002); page 2 the shared
    #   missing page (0x5001); page 3 private (0x5003) and all INVALID (allowed); page 4 the
    #   identity page again, partial (pfns 2048-2147).
    frames = [0x5000, 0x5002, 0x5001, 0x5003, 0x5002]
    f = Asm(8)
    f.literal([0x5000])            # 18 80 c0 01  (§9: 0x5000 → 0x5002 is no ±1/0 step)
    f.run(DESC, 2, 0x5002)         # 24 02        (0x5002, 0x5001)
    f.run(DESC, 2, 0x5003)         # 24 02        (0x5003, 0x5002)
    h = base_header(8, 2148, flags=FLAG_FRAMES | FLAG_IDENTITY_KNOWN, source=1, domain_id=0,
                    list_vaddr=0xFFFFC90000000000, missing_page_mfn=0x5001,
                    identity_page_mfn=0x5002, nr_list_frames=5)          # ceil(2148·8/4096) = 5
    if bad_rule is None:
        good(name, description, h, entries, map_asm, f, frames, bsid=5)
    else:
        recs, ents = decode_stream(bytes(map_asm.b), 8, 2148, False)
        assert ents == entries
        describe_map(h, entries, map_asm.b, len(recs))
        return elf_note(build(h, map_asm.b, f.b))


SP_GOOD = ([0x10000 + i for i in range(512)] + [p | IDB for p in range(512, 1024)]
           + [ALL_ONES] * 1024 + [p | IDB for p in range(2048, 2148)])


def v_shared_pages():
    a = Asm(8)
    a.run(ASC, 512, 0x10000)       # 03 80 04 80 80 08   page 0
    a.identity(512)                # 02 80 04            page 1 (identity-backed)
    a.invalid(1024)                # 01 80 08            pages 2, 3
    a.identity(100)                # 02 64               page 4, partial
    shared_pages_note(a, SP_GOOD, "shared-pages", "FRAMES with list pages backed by the shared "
                      "identity and missing pages (rule 16 holds), a private all-INVALID page, a "
                      "partial last page; LZ4 block size ID 5")


# ==========================================================================================
# Bad vectors (rule numbers of §8; bad/README.md says which later rules some also break).

def b_rule1():
    n = bytearray(WE_REBUILT)
    n[4:8] = struct.pack("<I", 200 + 4)                # n_descsz 4 past the end of the note
    bad("descsz-past-end", 1, bytes(n))


def b_rule7():
    # nr_pfns above 2^40 (width 8) / 2^30 (width 4) with an otherwise valid note: one INVALID
    # record covers it all, so only rule 7 is broken.
    for name, width, n in (("nr-pfns-2p40", 8, (1 << 40) + 1), ("nr-pfns-w4", 4, (1 << 30) + 1)):
        a = Asm(width); a.invalid(n)               # 01 + uvar(n)
        h = base_header(width, n, count_invalid=n, nr_records=1, map_stream_size=len(a.b),
                        map_digest=digest_of([(0, n, ALL_ONES, 0)]))
        bad(name, 7, elf_note(build(h, a.b)))


def b_rule11():
    # decoded_size one above 11 × nr_pfns: the worked example's stream followed by zero bytes,
    # in a frame that really holds that many bytes. Rule 11 comes first; rule 14 (bytes after
    # the last record) is also broken. The same with exactly 11 × nr_pfns passes rule 11 and
    # fails only rule 14.
    for name, size, rule in (("bomb-by-one", 11 * 24 + 1, 11), ("bomb-bound-exact", 11 * 24, 14)):
        s = WE_STREAM + bytes(size - len(WE_STREAM))
        h = we_header(); h["map_stream_size"] = size
        bad(name, rule, elf_note(build(h, s)))


def b_rule13():
    # One fault each, every other field (HC byte included) consistent.
    bad("lz4-no-checksum", 13, we_note(content_checksum=False))      # FLG 0x68, no C.Checksum
    bad("lz4-no-content-size", 13, we_note(content_size=False))      # FLG 0x64
    f = bytearray(lz4_frame(WE_STREAM)); f[6:14] = struct.pack("<Q", 14)
    f[14] = (xxh32(bytes(f[4:14])) >> 8) & 0xFF                        # HC recomputed
    bad("lz4-content-size", 13, we_note(frame=bytes(f)))             # declares 14 ≠ decoded_size 13
    f = bytearray(lz4_frame(WE_STREAM)); f[14] ^= 0x01
    bad("lz4-header-checksum", 13, we_note(frame=bytes(f)))          # HC byte wrong
    f = bytearray(lz4_frame(WE_STREAM)); f[-1] ^= 0x01
    bad("lz4-content-checksum", 13, we_note(frame=bytes(f)))         # only the content checksum
    f = bytearray(lz4_frame(WE_STREAM, block_checksums=True)); f[-9] ^= 0x01
    bad("lz4-block-checksum", 13, we_note(frame=bytes(f)))           # only the block checksum
    bad("lz4-dict-id", 13, we_note(dict_id=0x12345678))              # DictID flag + field
    skip = struct.pack("<II", 0x184D2A50, 4) + b"p2m!"
    bad("lz4-skippable", 13, we_note(frame=skip + lz4_frame(WE_STREAM)))
    bad("lz4-trailing-skippable", 13,
        we_note(frame=lz4_frame(WE_STREAM) + struct.pack("<II", 0x184D2A5F, 0)))
    # Legacy frame: magic 0x184C2102, then compressed size and an LZ4 block (token 0xd0:
    # 13 literals).
    blk = bytes([0xD0]) + WE_STREAM
    bad("lz4-legacy", 13, we_note(frame=struct.pack("<II", 0x184C2102, len(blk)) + blk))
    bad("lz4-version", 13, we_note(version=2))                       # FLG bits 7-6 = 10
    bad("lz4-reserved-flg", 13, we_note(flg_extra=0x02))             # FLG bit 1
    bad("lz4-reserved-bd7", 13, we_note(bd_extra=0x80))              # BD bit 7
    bad("lz4-reserved-bd-low", 13, we_note(bd_extra=0x01))           # BD bit 0
    bad("lz4-bsid-3", 13, we_note(bsid=3))                           # block size ID 3
    # An LZ4-compressed block that does not decode: token 0xe0 promises 14 literals, 13 follow.
    bad("lz4-bad-block", 13, we_note(blocks=[("lz4", bytes([0xE0]) + WE_STREAM)]))
    # The frame ends after its block: no EndMark, no content checksum (a truncated frame).
    bad("lz4-no-end-mark", 13, we_note(frame=lz4_frame(WE_STREAM)[:-8]))
    # An uncompressed block of 65537 bytes under block size ID 4 (64 KiB), everything else
    # valid: a LITERAL_RAW of 8191 entries and 6 one-entry INVALID records (65537 bytes).
    vals = [2 * i for i in range(8191)]
    a = Asm(8); a.literal_raw(vals)
    for _ in range(6):
        a.invalid(1)
    assert len(a.b) == 65537
    e = vals + [ALL_ONES] * 6
    h = base_header(8, len(e)); describe_map(h, e, a.b, 7)
    bad("lz4-block-too-big", 13, elf_note(build(h, a.b, bsid=4)))


def b_rule14():
    # Width 4: 0xC00000003FFFFFFF is not representable (§3) as a LITERAL or a REPEAT value.
    x = 0xC00000003FFFFFFF
    for name, fill in (("literal-not-representable", lambda a: a.literal([x])),
                       ("repeat-not-representable", lambda a: a.run(REPEAT, 1, x))):
        a = Asm(4); fill(a); a.invalid(23)
        e = [x] + [ALL_ONES] * 23
        h = base_header(4, 24); describe_map(h, e, a.b, 2)
        bad(name, 14, elf_note(build(h, a.b)))
    # A 10-byte svar whose 10th byte is 0x02 (value ≥ 2^64, §6.1). Read modulo 2^64 it would be
    # 0: the header describes ASC 24 from mfn 0.
    a = Asm(8); a.tag(ASC, 24); a.raw(b"\x80" * 9 + b"\x02")
    e = list(range(24))
    h = base_header(8, 24); describe_map(h, e, a.b, 1)
    bad("uvar-overflow", 14, elf_note(build(h, a.b)))


def b_rule15():
    h = we_header(); h["count_mfn"] = 6; h["count_foreign"] = 1      # still adds up to 24
    bad("counts-per-kind", 15, we_note(h))


def b_rule16():
    # missing_page_mfn = identity_page_mfn (the emitter bug), no frames stream.
    bad("shared-pages-same", 16, we_note(we_header(flags=FLAG_IDENTITY_KNOWN,
                                                   missing_page_mfn=0x99, identity_page_mfn=0x99)))
    # List page 1 is backed by the identity page but its pfns are INVALID (the emitter bug).
    a = Asm(8); a.run(ASC, 512, 0x10000); a.invalid(1536); a.identity(100)
    e = SP_GOOD[:512] + [ALL_ONES] * 1536 + SP_GOOD[2048:]
    bad("identity-page-invalid", 16, shared_pages_note(a, e, bad_rule=16))
    # List page 2 is backed by the missing page but pfn 1100 holds an mfn.
    a = Asm(8); a.run(ASC, 512, 0x10000); a.identity(512); a.invalid(76); a.literal([0x777])
    a.invalid(947); a.identity(100)
    e = list(SP_GOOD); e[1100] = 0x777
    bad("missing-page-not-invalid", 16, shared_pages_note(a, e, bad_rule=16))
    # The partial last page is backed by the identity page; pfn 2100 holds identity of 2101.
    a = Asm(8); a.run(ASC, 512, 0x10000); a.identity(512); a.invalid(1024); a.identity(52)
    a.literal([2101 | IDB]); a.identity(47)
    e = list(SP_GOOD); e[2100] = 2101 | IDB
    bad("identity-page-wrong-pfn", 16, shared_pages_note(a, e, bad_rule=16))


def main():
    check = "--check" in sys.argv[1:]
    stored_we = open(os.path.join(HERE, "worked-example.note"), "rb").read()
    assert stored_we == WE_REBUILT, "worked-example.note is not what §11 describes"
    for f in (v_literal_raw_w8, v_guest32_edges, v_max_size, v_lz4_frame_options, v_shared_pages, v_host_domu_m2p,
              b_rule1, b_rule7, b_rule11, b_rule13, b_rule14, b_rule15, b_rule16):
        f()
    files = {}
    for name, data in GOOD.items():
        files[os.path.join(HERE, name if name.endswith(".json") else name + ".note")] = data
    for name, (rule, data) in BAD.items():
        files[os.path.join(HERE, "bad", name + ".note")] = data
    differ = []
    for path, data in sorted(files.items()):
        old = open(path, "rb").read() if os.path.exists(path) else None
        if old != data:
            differ.append(os.path.relpath(path, HERE))
            if not check:
                with open(path, "wb") as fh:
                    fh.write(data)
    readme = open(os.path.join(HERE, "bad", "README.md"), encoding="utf-8").read()
    for name, (rule, _) in BAD.items():
        assert "| %s.note | %d |" % (name, rule) in readme, "bad/README.md lacks " + name
    if check and differ:
        sys.exit("differs from what assemble.py writes: " + ", ".join(differ))
    print("%d good, %d bad vectors%s" % (len([n for n in GOOD if not n.endswith(".json")]), len(BAD),
                                          (", rewrote " + ", ".join(differ)) if differ and not check else ""))


if __name__ == "__main__":
    main()
