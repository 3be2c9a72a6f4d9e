/*
 * libp2mnote: read the memory of a Xen PV Linux guest from its crash dump.
 *
 * A PV guest's page tables hold machine frames and its pfn->mfn table (the p2m) sits in
 * vmalloc space, so a reader that keeps pseudo-physical addresses recurses. This library does
 * every kernel-virtual translation by walking the guest's page tables in machine memory only,
 * and maps pseudo-physical addresses through the p2m: the dump's p2mnote note first
 * (Spec/p2mnote.md), else the tables the guest left in memory.
 *
 * Dumps: ELF vmcores (Xen dom0 kdump), `xl dump-core` files, makedumpfile's kdump-compressed
 * files and flattened streams. Symbols: a System.map, a vmlinux, and the dump's VMCOREINFO.
 *
 * Conventions (Spec/libp2mnote.md has the whole contract):
 *  - Every call that can fail returns a p2mnote_status; P2MNOTE_OK is 0. On failure,
 *    p2mnote_last_error() gives a message naming the file, the offset or address, and what was
 *    expected. No input, however malformed, makes the library abort the calling process.
 *  - Out parameters are written only on success, except `done` of p2mnote_read, which always
 *    says how many bytes were copied.
 *  - Strings the library returns through `const char **` belong to the handle and stay valid
 *    until p2mnote_close; strings returned through `char **` are the caller's, freed with
 *    p2mnote_free.
 *  - One handle may be used from several threads at once; calls on it are serialised.
 *  - Addresses are 64-bit numbers. Kernel virtual (KVIRT), pseudo-physical (PPHYS: the guest's
 *    own "physical" addresses, pfn << 12) and machine (MACHINE: mfn << 12, what the dump holds).
 */
#ifndef P2MNOTE_H
#define P2MNOTE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this interface. A later version only adds calls and appends fields to
 * structures whose first member is struct_size. */
#define P2MNOTE_API_VERSION 1

typedef enum p2mnote_status {
    P2MNOTE_OK = 0,
    P2MNOTE_ERR_ARGUMENT = 1,   /* a NULL pointer, an unknown flag, a bad struct_size */
    P2MNOTE_ERR_IO = 2,         /* the file cannot be opened or read (a FIFO, a directory, EIO) */
    P2MNOTE_ERR_FORMAT = 3,     /* the file is not a dump this library reads, or it is malformed */
    P2MNOTE_ERR_NO_P2M = 4,     /* no p2m source: no note, and no table the guest left readable */
    P2MNOTE_ERR_NO_SYMBOL = 5,  /* a symbol that is needed is unknown (pass a System.map or vmlinux) */
    P2MNOTE_ERR_UNMAPPED = 6,   /* the address does not translate (not present, INVALID p2m entry) */
    P2MNOTE_ERR_NOT_IN_DUMP = 7,/* the address translates, but the dump does not hold the page */
    P2MNOTE_ERR_MISMATCH = 8,   /* the vmlinux is not the kernel of the dump (build ID, banner) */
    P2MNOTE_ERR_NO_DOMAIN = 9,  /* the domain asked for is not in the dump */
    P2MNOTE_ERR_RANGE = 10,     /* beyond a table (a pfn past the p2m), or a buffer too small */
    P2MNOTE_ERR_INTERNAL = 11   /* a defect of the library; the message says what */
} p2mnote_status;

/* The three address spaces of p2mnote_read. */
typedef enum p2mnote_space {
    P2MNOTE_KVIRT = 0,
    P2MNOTE_PPHYS = 1,
    P2MNOTE_MACHINE = 2
} p2mnote_space;

/* What a p2m slot says (Spec/p2mnote.md section 3). */
typedef enum p2mnote_entry_kind {
    P2MNOTE_ENTRY_MFN = 0,       /* a machine frame */
    P2MNOTE_ENTRY_INVALID = 1,   /* INVALID_P2M_ENTRY: missing, ballooned out, beyond RAM */
    P2MNOTE_ENTRY_IDENTITY = 2,  /* a 1:1 frame (PCI holes and the like): mfn == pfn */
    P2MNOTE_ENTRY_FOREIGN = 3    /* another domain's frame mapped here */
} p2mnote_entry_kind;

typedef struct p2mnote p2mnote;  /* one open dump (and one guest in it) */

/* p2mnote_open_options.flags */
#define P2MNOTE_OPEN_CR3     (1u << 0)  /* use .cr3 as the page-table root (machine address) */
#define P2MNOTE_OPEN_P2M_MFN (1u << 1)  /* .p2m_mfn: the frame-list-list mfn (a frame tree) */
#define P2MNOTE_OPEN_DOMAIN  (1u << 2)  /* open guest .domain of a crashed Xen host's dump
                                           (found in Xen's own tables: any PV guest, dom0
                                           included); on a one-guest dump only that guest's id
                                           (0 for a dom0 kdump) */
#define P2MNOTE_OPEN_NO_NOTE (1u << 3)  /* ignore the p2mnote note; use the guest's own tables */

struct p2mnote_open_options {
    uint32_t struct_size;       /* sizeof(struct p2mnote_open_options) */
    uint32_t flags;             /* P2MNOTE_OPEN_* */
    const char *system_map;     /* a System.map, or NULL */
    const char *vmlinux;        /* a vmlinux (symbols, build ID), or NULL */
    uint64_t cr3;               /* with P2MNOTE_OPEN_CR3 */
    uint64_t p2m_mfn;           /* with P2MNOTE_OPEN_P2M_MFN */
    int64_t domain;             /* with P2MNOTE_OPEN_DOMAIN */
};

struct p2mnote_info {
    uint32_t struct_size;       /* set by the caller: sizeof(struct p2mnote_info) */
    uint32_t page_size;         /* 4096 */
    const char *path;           /* the dump */
    const char *container;      /* "ELF vmcore", "xl dump-core", "kdump-compressed", "flattened" */
    uint64_t machine_bytes;     /* bytes of machine memory the dump holds */
    uint64_t kernel_offset;     /* KASLR offset applied to the symbols (0 under PV) */
    uint64_t symbol_count;      /* symbols known (System.map, vmlinux, VMCOREINFO) */
    int64_t domain;             /* the domain opened, or -1 for the dump's own guest */
};

/* One level of a page walk: the table read, the slot used and the entry found there. */
struct p2mnote_walk_step {
    uint32_t level;             /* 4 (top) .. 1 */
    uint32_t index;             /* slot in the table, 0..511 */
    uint64_t table_mfn;         /* machine frame of the table */
    uint64_t entry;             /* the entry as stored */
};

struct p2mnote_walk {
    uint64_t vaddr;
    uint64_t maddr;             /* the machine address vaddr translates to */
    uint64_t page_size;         /* 4096, 2 MiB or 1 GiB */
    uint64_t pfn;               /* the pseudo-physical frame of maddr, if the p2m names exactly one;
                                   else UINT64_MAX */
    uint32_t nsteps;            /* steps[0..nsteps) were walked, top level first */
    uint32_t reserved;
    struct p2mnote_walk_step steps[5];
};

/* "p2mnote X.Y.Z (note format 1.1, API 1)"; static storage. */
const char *p2mnote_version(void);

/* The message of this thread's last failed call ("" if none); valid until this thread's next
 * call into the library. */
const char *p2mnote_last_error(void);

/* Open a dump. opts may be NULL (no symbols but the dump's VMCOREINFO). On success *out is a
 * handle for p2mnote_close. Opening reads the headers and the symbols; a vmlinux whose build ID
 * (or, lacking one, banner) differs from the dump's kernel gives P2MNOTE_ERR_MISMATCH. */
p2mnote_status p2mnote_open(const char *path, const struct p2mnote_open_options *opts, p2mnote **out);

/* Close a handle (NULL is ignored). */
void p2mnote_close(p2mnote *h);

/* Free a string returned through char ** (NULL is ignored). */
void p2mnote_free(void *p);

p2mnote_status p2mnote_get_info(p2mnote *h, struct p2mnote_info *out);

/* The page-table root (machine address of the top table) and how it was found (a Xen crash
 * note of a cpu, the xl vcpu context, the cr3 option, ...). */
p2mnote_status p2mnote_root(p2mnote *h, uint64_t *root, const char **how);

/* The p2m in use: its number of entries (pfns 0..nr_pfns-1), the source's name ("note",
 * "linear-list", "frame-tree", "xen-p2m") and where it was read. */
p2mnote_status p2mnote_p2m(p2mnote *h, uint64_t *nr_pfns, const char **source, const char **location);

/* pfn -> entry. *frame is the machine frame for MFN and FOREIGN, the pfn for IDENTITY,
 * UINT64_MAX for INVALID. A pfn at or past nr_pfns gives P2MNOTE_ERR_RANGE. */
p2mnote_status p2mnote_pfn_to_mfn(p2mnote *h, uint64_t pfn, uint64_t *frame, p2mnote_entry_kind *kind);

/* Up to `count` consecutive entries from `first_pfn`, in the 64-bit form of Spec section 3
 * (INVALID all ones, bit 63 FOREIGN, bit 62 IDENTITY); *got says how many (fewer at the end). */
p2mnote_status p2mnote_p2m_entries(p2mnote *h, uint64_t first_pfn, uint64_t *entries, size_t count, size_t *got);

/* mfn -> pfn(s): *count is the number of pfns naming mfn (0: none; >1: the p2m is ambiguous);
 * the first min(*count, capacity) are stored in pfns. */
p2mnote_status p2mnote_mfn_to_pfn(p2mnote *h, uint64_t mfn, uint64_t *pfns, size_t capacity, size_t *count);

/* Translate a kernel virtual address through the guest's page tables in machine memory. */
p2mnote_status p2mnote_vtop(p2mnote *h, uint64_t vaddr, struct p2mnote_walk *out);

/* Read len bytes at addr in the given space. On failure *done holds the bytes copied (all pages
 * before the one that failed) and the message names the address that failed. */
p2mnote_status p2mnote_read(p2mnote *h, p2mnote_space space, uint64_t addr, void *buf, size_t len, size_t *done);

/* A symbol's address (KASLR applied). */
p2mnote_status p2mnote_symbol(p2mnote *h, const char *name, uint64_t *addr);

/* The kernel's banner (linux_banner) as read from the dump, without the trailing newline. */
p2mnote_status p2mnote_banner(p2mnote *h, const char **text);

/* A VMCOREINFO text for the guest, most faithful first: the dump's own note if it has one for
 * this kernel (*synthesised 0); else the text the kernel prepared in its memory (vmcoreinfo_data,
 * *synthesised 2); else one made from the dump (OSRELEASE from the banner, PAGESIZE,
 * KERNELOFFSET, SYMBOL(swapper_pg_dir), BUILD-ID from vmlinux_build_id, the kallsyms symbols
 * when known; *synthesised 1). */
p2mnote_status p2mnote_vmcoreinfo(p2mnote *h, const char **text, size_t *len, int *synthesised);

/* Run one p2m-analyze command line (e.g. "check", "mod", "rd linux_banner 4") and return
 * its JSON envelope {"dump", "command", "result"} (Spec/json.md); free it with p2mnote_free.
 * A command that ran returns P2MNOTE_OK, also when its result reports a problem (check finding
 * differences); one that could not run (a bad command line, `check` on a dump without a note)
 * returns a status with the command's message. */
p2mnote_status p2mnote_command(p2mnote *h, const char *line, char **json);

#ifdef __cplusplus
}
#endif
#endif /* P2MNOTE_H */
