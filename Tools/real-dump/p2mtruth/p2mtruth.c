// SPDX-License-Identifier: GPL-2.0
/*
 * p2mtruth: print, for every pfn of a Xen PV Linux guest's p2m list, what Linux itself answers
 * for it, as run-length lines in the kernel log, then refuse to stay loaded (-EAGAIN), so that
 * /proc/modules is the same after insmod as before.
 *
 * The answer is __pfn_to_mfn(pfn) (arch/x86/include/asm/xen/page.h, a static inline built on
 * the GPL exports xen_p2m_addr, xen_p2m_size, xen_max_p2m_pfn and get_phys_to_machine): the list
 * word, unless it is INVALID_P2M_ENTRY, in which case get_phys_to_machine() decides (IDENTITY_FRAME
 * when the list page's PTE points at p2m_identity's frame). The module does not model that; it
 * calls it.
 *
 * Lines (all numbers hex; each prefixed "P2MTRUTH "):
 *   BEGIN xen_p2m_addr=A xen_p2m_size=N xen_max_p2m_pfn=M per_page=0|1
 *   SHARED <var> addr=A value=V pfn=P mfn=F raw=R ones=K/512     (p2m_missing, p2m_identity)
 *   SHARED <var> addr=A value=V pfn=P mfn=F raw=R pte0=E pte0_pfn=Q same=K/512
 *                                                               (p2m_missing_pte, p2m_identity_pte)
 *   INVALID <start> <count>          __pfn_to_mfn == INVALID_P2M_ENTRY (~0) for each pfn
 *   IDENTITY <start> <count>         __pfn_to_mfn(pfn) == IDENTITY_FRAME(pfn) for each pfn
 *   MFN <start> <count> <first> <step>   any other value: first, first+step, ... (step +1 or -1;
 *                                    0 for a single pfn). The value is __pfn_to_mfn's raw
 *                                    answer (FOREIGN/IDENTITY bits, if any, kept).
 *   BACKING <start> <count> missing|identity|own   which frame Linux's page table maps the list
 *                                    page(s) covering those pfns to (lookup_address + pte_pfn,
 *                                    as get_phys_to_machine does); only with the static addresses.
 *   END runs=R backing=B pfns=N ns=T
 *
 * p2m_missing, p2m_identity, p2m_missing_pte and p2m_identity_pte are static in arch/x86/xen/p2m.c:
 * pass their /proc/kallsyms addresses as the module parameters of the same names.
 *
 * per_page=1 (not the default) takes one answer per list page (the first pfn's) wherever that page
 * is mapped to p2m_missing's or p2m_identity's frame and takes every pfn elsewhere; it exists only
 * in case the full scan is too slow under emulation. The default asks Linux about every pfn.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/ktime.h>
#include <linux/uaccess.h>
#include <asm/pgtable.h>
#include <asm/xen/page.h>

static unsigned long p2m_missing;
static unsigned long p2m_identity;
static unsigned long p2m_missing_pte;
static unsigned long p2m_identity_pte;
static int per_page;
module_param(p2m_missing, ulong, 0);
MODULE_PARM_DESC(p2m_missing, "address of the static variable p2m_missing (from /proc/kallsyms)");
module_param(p2m_identity, ulong, 0);
MODULE_PARM_DESC(p2m_identity, "address of the static variable p2m_identity");
module_param(p2m_missing_pte, ulong, 0);
MODULE_PARM_DESC(p2m_missing_pte, "address of the static variable p2m_missing_pte");
module_param(p2m_identity_pte, ulong, 0);
MODULE_PARM_DESC(p2m_identity_pte, "address of the static variable p2m_identity_pte");
module_param(per_page, int, 0);
MODULE_PARM_DESC(per_page, "1: one answer per list page mapped to a shared page (default 0: every pfn)");

#define PFX "P2MTRUTH "

enum kind { K_NONE, K_INVALID, K_IDENTITY, K_MFN };

struct run {
	enum kind kind;
	unsigned long start, count, first;
	long step;
};

static unsigned long nruns, nbacking;

static void emit(const struct run *r)
{
	switch (r->kind) {
	case K_INVALID:
		pr_info(PFX "INVALID %lx %lx\n", r->start, r->count);
		break;
	case K_IDENTITY:
		pr_info(PFX "IDENTITY %lx %lx\n", r->start, r->count);
		break;
	case K_MFN:
		pr_info(PFX "MFN %lx %lx %lx %s\n", r->start, r->count, r->first,
			r->step > 0 ? "+1" : r->step < 0 ? "-1" : "0");
		break;
	default:
		return;
	}
	nruns++;
}

/* Add pfns [pfn, pfn+n) whose answers are v, v+d, v+2d... (n > 1 only for INVALID/IDENTITY). */
static void add(struct run *r, unsigned long pfn, unsigned long v, unsigned long n)
{
	enum kind k;

	if (v == INVALID_P2M_ENTRY)
		k = K_INVALID;
	else if (v == IDENTITY_FRAME(pfn))
		k = K_IDENTITY;
	else
		k = K_MFN;

	if (r->kind == k && r->start + r->count == pfn) {
		if (k != K_MFN) {
			r->count += n;
			return;
		}
		if (r->count == 1 && (v == r->first + 1 || v == r->first - 1)) {
			r->step = (v == r->first + 1) ? 1 : -1;
			r->count = 2;
			return;
		}
		if (r->count > 1 &&
		    v == (r->step > 0 ? r->first + r->count : r->first - r->count)) {
			r->count++;
			return;
		}
	}
	emit(r);
	r->kind = k;
	r->start = pfn;
	r->count = n;
	r->first = v;
	r->step = 0;
}

/* The frame a direct-map pointer points at, as Linux sees it. */
static void frame_of(unsigned long v, unsigned long *pfn, unsigned long *mfn, unsigned long *raw)
{
	*pfn = *mfn = *raw = ~0UL;
	if (v && virt_addr_valid(v)) {
		*pfn = virt_to_pfn((void *)v);
		*mfn = pfn_to_mfn(*pfn);
		*raw = __pfn_to_mfn(*pfn);
	}
}

static unsigned long shared_pfn(const char *name, unsigned long addr, int is_pte)
{
	unsigned long v = 0, pfn, mfn, raw, i, same = 0;

	if (!addr) {
		pr_info(PFX "SHARED %s addr=0 (not given)\n", name);
		return ~0UL;
	}
	if (copy_from_kernel_nofault(&v, (void *)addr, sizeof(v))) {
		pr_info(PFX "SHARED %s addr=%lx unreadable\n", name, addr);
		return ~0UL;
	}
	frame_of(v, &pfn, &mfn, &raw);
	if (pfn == ~0UL) {
		pr_info(PFX "SHARED %s addr=%lx value=%lx (not a direct-map address)\n", name, addr, v);
		return ~0UL;
	}
	if (!is_pte) {
		const unsigned long *w = (const unsigned long *)v;

		for (i = 0; i < P2M_PER_PAGE; i++)
			same += (w[i] == INVALID_P2M_ENTRY);
		pr_info(PFX "SHARED %s addr=%lx value=%lx pfn=%lx mfn=%lx raw=%lx ones=%lx/%lx\n",
			name, addr, v, pfn, mfn, raw, same, (unsigned long)P2M_PER_PAGE);
	} else {
		const pte_t *p = (const pte_t *)v;
		unsigned long q = pte_pfn(p[0]);

		for (i = 0; i < PTRS_PER_PTE; i++)
			same += (pte_pfn(p[i]) == q);
		pr_info(PFX "SHARED %s addr=%lx value=%lx pfn=%lx mfn=%lx raw=%lx pte0=%llx pte0_pfn=%lx same=%lx/%lx\n",
			name, addr, v, pfn, mfn, raw, (unsigned long long)pte_val(p[0]), q, same,
			(unsigned long)PTRS_PER_PTE);
	}
	return pfn;
}

enum backing { B_NONE, B_MISSING, B_IDENTITY, B_OWN };
static const char *const bname[] = { "?", "missing", "identity", "own" };

static int __init p2mtruth_init(void)
{
	unsigned long pfn, n = xen_p2m_size, missing_pfn, identity_pfn;
	unsigned long bstart = 0, bcount = 0;
	enum backing bcur = B_NONE;
	struct run r = { .kind = K_NONE };
	u64 t0 = ktime_get_ns();
	int have_frames;

	pr_info(PFX "BEGIN xen_p2m_addr=%lx xen_p2m_size=%lx xen_max_p2m_pfn=%lx per_page=%d\n",
		(unsigned long)xen_p2m_addr, xen_p2m_size, xen_max_p2m_pfn, per_page);
	missing_pfn = shared_pfn("p2m_missing", p2m_missing, 0);
	identity_pfn = shared_pfn("p2m_identity", p2m_identity, 0);
	shared_pfn("p2m_missing_pte", p2m_missing_pte, 1);
	shared_pfn("p2m_identity_pte", p2m_identity_pte, 1);
	have_frames = missing_pfn != ~0UL && identity_pfn != ~0UL;

	for (pfn = 0; pfn < n; ) {
		if ((pfn % P2M_PER_PAGE) == 0 && have_frames) {
			unsigned int level;
			pte_t *ptep = lookup_address((unsigned long)(xen_p2m_addr + pfn), &level);
			enum backing b = B_OWN;
			unsigned long q;

			if (!ptep || level != PG_LEVEL_4K) {
				b = B_NONE;
			} else {
				q = pte_pfn(*ptep);
				if (q == missing_pfn)
					b = B_MISSING;
				else if (q == identity_pfn)
					b = B_IDENTITY;
			}
			if (b != bcur) {
				if (bcount) {
					pr_info(PFX "BACKING %lx %lx %s\n", bstart, bcount, bname[bcur]);
					nbacking++;
				}
				bcur = b;
				bstart = pfn;
				bcount = 0;
			}
			bcount += min_t(unsigned long, P2M_PER_PAGE, n - pfn);
			if (per_page && (b == B_MISSING || b == B_IDENTITY) && n - pfn >= P2M_PER_PAGE) {
				unsigned long v = __pfn_to_mfn(pfn);

				/* One answer for the page: INVALID stays INVALID, IDENTITY_FRAME(pfn) extends
				 * to IDENTITY_FRAME(pfn + i); anything else would need every pfn. */
				if (v == INVALID_P2M_ENTRY || v == IDENTITY_FRAME(pfn)) {
					add(&r, pfn, v, P2M_PER_PAGE);
					pfn += P2M_PER_PAGE;
					cond_resched();
					continue;
				}
			}
		}
		add(&r, pfn, __pfn_to_mfn(pfn), 1);
		pfn++;
		if ((pfn & 0xfff) == 0)
			cond_resched();
	}
	emit(&r);
	if (bcount) {
		pr_info(PFX "BACKING %lx %lx %s\n", bstart, bcount, bname[bcur]);
		nbacking++;
	}
	pr_info(PFX "END runs=%lx backing=%lx pfns=%lx ns=%llu\n", nruns, nbacking, n,
		(unsigned long long)(ktime_get_ns() - t0));
	/* Do not stay loaded: /proc/modules must read as it did before insmod. */
	return -EAGAIN;
}

module_init(p2mtruth_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Print Linux's own answer (__pfn_to_mfn) for every pfn of the Xen PV p2m list");
