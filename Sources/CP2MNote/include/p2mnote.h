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

/* One guest CPU's registers at the crash (p2mnote_registers). */
#define P2MNOTE_REGS_RUNNING (1u << 0)  /* the vCPU was on a physical CPU at the crash */
struct p2mnote_registers {
    uint32_t struct_size;       /* set by the caller: sizeof(struct p2mnote_registers) */
    uint32_t flags;             /* P2MNOTE_REGS_* */
    int32_t cpu;                /* the guest's CPU number (Linux's), -1 when it could not be told */
    int32_t pcpu;               /* the physical CPU whose Xen stack held them, -1 if none */
    const char *source;         /* where they came from, for people */
    uint64_t regs[27];          /* x86-64 struct user_regs_struct order (an NT_PRSTATUS's pr_reg):
                                   r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi
                                   orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs */
};

/**
 * The library's version.
 * @return "p2mnote X.Y.Z (note format 1.1, API 1)", in static storage.
 */
const char *p2mnote_version(void);

/**
 * The message of this thread's last failed call.
 * @return the message ("" if none); valid until this thread's next call into the library.
 */
const char *p2mnote_last_error(void);

/**
 * Open one guest of a dump (an ELF vmcore, an xl dump-core, a kdump-compressed or flattened
 * file). The dump is opened once; its headers and the symbols are read, the p2m and the page
 * tables only when first needed.
 * @param path  the dump.
 * @param opts  symbols, a page-table root, a p2m root, a domain (P2MNOTE_OPEN_*); NULL for none
 *              (no symbols but the dump's VMCOREINFO).
 * @param out   receives the handle, for p2mnote_close.
 * @return P2MNOTE_OK; P2MNOTE_ERR_IO when the dump or a symbol file cannot be opened;
 *         P2MNOTE_ERR_FORMAT for a file that is no dump or a damaged one; P2MNOTE_ERR_MISMATCH
 *         for a vmlinux or System.map of another build (its build ID, or lacking one its
 *         banner, differs from the dump's kernel); P2MNOTE_ERR_NO_DOMAIN for a domain the dump
 *         does not hold.
 */
p2mnote_status p2mnote_open(const char *path, const struct p2mnote_open_options *opts, p2mnote **out);

/**
 * Close a handle. A call still running on another thread finishes first.
 * @param h  the handle (NULL is ignored).
 */
void p2mnote_close(p2mnote *h);

/**
 * Free a string the library returned through char ** (p2mnote_command's JSON).
 * @param p  the string (NULL is ignored).
 */
void p2mnote_free(void *p);

/**
 * What the handle holds.
 * @param h    an open handle.
 * @param out  filled up to the caller's out->struct_size (set it first).
 * @return P2MNOTE_OK, or P2MNOTE_ERR_ARGUMENT for a bad handle or struct_size.
 */
p2mnote_status p2mnote_get_info(p2mnote *h, struct p2mnote_info *out);

/**
 * The guest's page-table root.
 * @param h     an open handle.
 * @param root  receives the machine address of the top table.
 * @param how   receives how it was found (a Xen crash note of a cpu, the xl vcpu context, the
 *              cr3 option, ...); may be NULL. Owned by the handle.
 * @return P2MNOTE_OK, or P2MNOTE_ERR_FORMAT / P2MNOTE_ERR_MISMATCH when no recorded root maps
 *         the kernel's symbols.
 */
p2mnote_status p2mnote_root(p2mnote *h, uint64_t *root, const char **how);

/**
 * The p2m in use (the note first, else the guest's own tables).
 * @param h         an open handle.
 * @param nr_pfns   receives its number of entries (pfns 0..nr_pfns-1).
 * @param source    receives the source's name ("note", "linear-list", "frame-tree", "xen-p2m",
 *                  "xen-m2p"); may be NULL. Owned by the handle.
 * @param location  receives where it was read; may be NULL. Owned by the handle.
 * @return P2MNOTE_OK, P2MNOTE_ERR_NO_P2M when no source can be read, P2MNOTE_ERR_FORMAT for a
 *         malformed note.
 */
p2mnote_status p2mnote_p2m(p2mnote *h, uint64_t *nr_pfns, const char **source, const char **location);

/**
 * One p2m entry.
 * @param h      an open handle.
 * @param pfn    the pseudo-physical frame.
 * @param frame  receives the machine frame for MFN and FOREIGN, the pfn for IDENTITY,
 *               UINT64_MAX for INVALID.
 * @param kind   receives the entry's kind; may be NULL.
 * @return P2MNOTE_OK, P2MNOTE_ERR_RANGE for a pfn at or past nr_pfns, P2MNOTE_ERR_NO_P2M.
 */
p2mnote_status p2mnote_pfn_to_mfn(p2mnote *h, uint64_t pfn, uint64_t *frame, p2mnote_entry_kind *kind);

/**
 * Consecutive p2m entries in the 64-bit form of Spec section 3 (INVALID all ones, bit 63
 * FOREIGN, bit 62 IDENTITY).
 * @param h          an open handle.
 * @param first_pfn  the first pfn.
 * @param entries    receives up to count entries.
 * @param count      the room in entries.
 * @param got        receives how many were stored (fewer at the end of the p2m, 0 past it).
 * @return P2MNOTE_OK or P2MNOTE_ERR_NO_P2M.
 */
p2mnote_status p2mnote_p2m_entries(p2mnote *h, uint64_t first_pfn, uint64_t *entries, size_t count, size_t *got);

/**
 * The pfns whose p2m entry is a machine frame (an index, never a scan).
 * @param h         an open handle.
 * @param mfn       the machine frame.
 * @param pfns      receives the first min(*count, capacity) pfns; may be NULL with capacity 0.
 * @param capacity  the room in pfns.
 * @param count     receives the number of pfns naming mfn (0: none; >1: the p2m is ambiguous).
 * @return P2MNOTE_OK or P2MNOTE_ERR_NO_P2M.
 */
p2mnote_status p2mnote_mfn_to_pfn(p2mnote *h, uint64_t mfn, uint64_t *pfns, size_t capacity, size_t *count);

/**
 * Walk a kernel virtual address through the guest's page tables in machine memory (their
 * entries hold mfns, so the walk never needs the p2m).
 * @param h      an open handle.
 * @param vaddr  the kernel virtual address.
 * @param out    receives the machine address, the page size, the pfn and each level's step.
 * @return P2MNOTE_OK or P2MNOTE_ERR_UNMAPPED (the message names the level that failed).
 */
p2mnote_status p2mnote_vtop(p2mnote *h, uint64_t vaddr, struct p2mnote_walk *out);

/**
 * Read memory in one of the three address spaces, page by page.
 * @param h      an open handle.
 * @param space  P2MNOTE_KVIRT, P2MNOTE_PPHYS or P2MNOTE_MACHINE.
 * @param addr   the first address.
 * @param buf    receives len bytes.
 * @param len    the number of bytes.
 * @param done   receives the bytes copied; on failure, all pages before the one that failed.
 *               May be NULL.
 * @return P2MNOTE_OK; P2MNOTE_ERR_UNMAPPED (no translation), P2MNOTE_ERR_RANGE (beyond the
 *         p2m or past 2^64), P2MNOTE_ERR_NOT_IN_DUMP (the frame is not in the dump); the
 *         message names the address that failed.
 */
p2mnote_status p2mnote_read(p2mnote *h, p2mnote_space space, uint64_t addr, void *buf, size_t len, size_t *done);

/**
 * A symbol's address.
 * @param h     an open handle.
 * @param name  the symbol.
 * @param addr  receives its address, KASLR applied.
 * @return P2MNOTE_OK or P2MNOTE_ERR_NO_SYMBOL.
 */
p2mnote_status p2mnote_symbol(p2mnote *h, const char *name, uint64_t *addr);

/**
 * The kernel's banner (linux_banner) as read from the dump.
 * @param h     an open handle.
 * @param text  receives the banner without its trailing newline. Owned by the handle.
 * @return P2MNOTE_OK, or the status of the read that failed.
 */
p2mnote_status p2mnote_banner(p2mnote *h, const char **text);

/**
 * A VMCOREINFO text for the guest, most faithful first: the dump's own note if it has one for
 * this kernel (*synthesised 0); else the text the kernel prepared in its memory
 * (vmcoreinfo_data, *synthesised 2); else one made from the dump (OSRELEASE from the banner,
 * PAGESIZE, KERNELOFFSET, SYMBOL(swapper_pg_dir), BUILD-ID from vmlinux_build_id, the kallsyms
 * symbols when known; *synthesised 1).
 * @param h            an open handle.
 * @param text         receives the text. Owned by the handle.
 * @param len          receives its length; may be NULL.
 * @param synthesised  receives 0, 1 or 2 as above; may be NULL.
 * @return P2MNOTE_OK, or the status of the read that failed.
 */
p2mnote_status p2mnote_vmcoreinfo(p2mnote *h, const char **text, size_t *len, int *synthesised);

/**
 * The guest's registers at the crash, one set per guest CPU the dump holds, guest CPU order.
 * Under Xen the dump's NT_PRSTATUS notes are Xen's; the guest's come from each physical CPU's
 * Xen stack (cpu_info), an xl dump-core's vCPU contexts, or struct vcpu where Xen's build is known.
 * @param h      an open handle.
 * @param index  which set (0 .. *count-1).
 * @param out    filled up to out->struct_size (set it first) when index < *count; may be NULL
 *               to ask for the count only.
 * @param count  receives the number of sets.
 * @return P2MNOTE_OK; P2MNOTE_ERR_RANGE for an index at or past *count (the count is still
 *         set); P2MNOTE_ERR_FORMAT when the dump records no registers of this guest.
 */
p2mnote_status p2mnote_registers(p2mnote *h, size_t index, struct p2mnote_registers *out, size_t *count);

/**
 * Run one command of the session (e.g. "check", "mod", "rd linux_banner 4"; "help" lists them).
 * @param h     an open handle.
 * @param line  the command line, words as a shell splits them.
 * @param json  receives its JSON envelope {"dump", "command", "result"} (Spec/json.md); free
 *              it with p2mnote_free.
 * @return P2MNOTE_OK for a command that ran, also when its result reports a problem (check
 *         finding differences); for one that could not run (a bad command line, `check` on a
 *         dump without a note), a status with the command's message.
 */
p2mnote_status p2mnote_command(p2mnote *h, const char *line, char **json);

#ifdef __cplusplus
}
#endif
#endif /* P2MNOTE_H */
