// SPDX-License-Identifier: GPL-2.0
/*
 * p2mshinfo: print what a Xen PV Linux guest has told Xen about its p2m through its shared info
 * page (HYPERVISOR_shared_info->arch, set by xen_setup_mfn_list_list in arch/x86/xen/p2m.c),
 * where that page is in machine memory, and its start info, as the guest itself sees them; then
 * refuse to stay loaded (-EAGAIN), as p2mtruth does. Independent ground truth for what a reader
 * of a whole-host dump finds in Xen's tables (struct domain's shared_info page). It reads
 * nothing but its own kernel's memory and calls no hypercall.
 *
 * HYPERVISOR_shared_info is not exported: pass the /proc/kallsyms address of the pointer variable
 * as shared_info_ptr=, and init_top_pgt's (the kernel's top page table, whose mfn is p2m_cr3's
 * frame) as init_top_pgt=.
 *
 * Lines (numbers hex; each prefixed "P2MSHINFO "):
 *   BEGIN shared_info_ptr=A shared_info=V fixmap=F initial_domain=0|1
 *   SHARED_INFO vaddr=V maddr=M mfn=X start_info.shared_info=S
 *   ARCH max_pfn=N pfn_to_mfn_frame_list_list=L nmi_reason=R p2m_cr3=C p2m_vaddr=P p2m_generation=G
 *   START_INFO magic=<string> nr_pages=N flags=F store_mfn=S store_evtchn=E console_mfn=C
 *              console_evtchn=E pt_base=P nr_pt_frames=N mfn_list=M first_p2m_pfn=F nr_p2m_frames=N
 *              (console_* are dom0's info_off/info_size for the initial domain)
 *   LINUX xen_p2m_addr=A xen_p2m_size=N xen_max_p2m_pfn=M init_top_pgt=T pfn=P mfn=X cr3=C
 *   END
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/uaccess.h>
#include <asm/fixmap.h>
#include <asm/xen/hypervisor.h>
#include <asm/xen/page.h>
#include <xen/xen.h>
#include <xen/interface/xen.h>

static unsigned long shared_info_ptr;
static unsigned long top_pgt;
module_param(shared_info_ptr, ulong, 0);
MODULE_PARM_DESC(shared_info_ptr, "address of the variable HYPERVISOR_shared_info (from /proc/kallsyms)");
module_param_named(init_top_pgt, top_pgt, ulong, 0);
MODULE_PARM_DESC(init_top_pgt, "address of init_top_pgt (from /proc/kallsyms)");

#define PFX "P2MSHINFO "

static int __init p2mshinfo_init(void)
{
	unsigned long v = 0;
	struct shared_info *s;
	struct start_info *si = xen_start_info;
	int dom0 = si && (si->flags & SIF_INITDOMAIN);

	if (!shared_info_ptr || copy_from_kernel_nofault(&v, (void *)shared_info_ptr, sizeof(v)) || !v) {
		pr_info(PFX "BEGIN shared_info_ptr=%lx unreadable\n", shared_info_ptr);
		pr_info(PFX "END\n");
		return -EAGAIN;
	}
	s = (struct shared_info *)v;
	pr_info(PFX "BEGIN shared_info_ptr=%lx shared_info=%lx fixmap=%lx initial_domain=%d\n",
		shared_info_ptr, v, (unsigned long)fix_to_virt(FIX_PARAVIRT_BOOTMAP), dom0);
	{
		xmaddr_t m = arbitrary_virt_to_machine(s);

		pr_info(PFX "SHARED_INFO vaddr=%lx maddr=%llx mfn=%llx start_info.shared_info=%lx\n", v,
			(unsigned long long)m.maddr, (unsigned long long)(m.maddr >> PAGE_SHIFT),
			si ? si->shared_info : 0UL);
	}
	pr_info(PFX "ARCH max_pfn=%lx pfn_to_mfn_frame_list_list=%lx nmi_reason=%lx p2m_cr3=%lx p2m_vaddr=%lx p2m_generation=%lx\n",
		s->arch.max_pfn, (unsigned long)s->arch.pfn_to_mfn_frame_list_list, s->arch.nmi_reason,
		s->arch.p2m_cr3, s->arch.p2m_vaddr, s->arch.p2m_generation);
	if (si) {
		char magic[sizeof(si->magic) + 1];

		memcpy(magic, si->magic, sizeof(si->magic));
		magic[sizeof(si->magic)] = 0;
		pr_info(PFX "START_INFO magic=%s nr_pages=%lx flags=%x store_mfn=%lx store_evtchn=%x console_mfn=%lx console_evtchn=%x pt_base=%lx nr_pt_frames=%lx mfn_list=%lx first_p2m_pfn=%lx nr_p2m_frames=%lx\n",
			magic, si->nr_pages, si->flags, (unsigned long)si->store_mfn, si->store_evtchn,
			dom0 ? (unsigned long)si->console.dom0.info_off : (unsigned long)si->console.domU.mfn,
			dom0 ? si->console.dom0.info_size : si->console.domU.evtchn,
			si->pt_base, si->nr_pt_frames, si->mfn_list, si->first_p2m_pfn, si->nr_p2m_frames);
	}
	if (top_pgt) {
		unsigned long pfn = virt_to_pfn((void *)top_pgt), mfn = pfn_to_mfn(pfn);

		pr_info(PFX "LINUX xen_p2m_addr=%lx xen_p2m_size=%lx xen_max_p2m_pfn=%lx init_top_pgt=%lx pfn=%lx mfn=%lx cr3=%lx\n",
			(unsigned long)xen_p2m_addr, xen_p2m_size, xen_max_p2m_pfn, top_pgt, pfn, mfn,
			(unsigned long)xen_pfn_to_cr3(mfn));
	}
	pr_info(PFX "END\n");
	return -EAGAIN;
}

module_init(p2mshinfo_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Print the Xen PV guest's shared_info arch fields and start info");
