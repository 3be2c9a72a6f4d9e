/* The header's layout, pinned: the Swift side of libp2mnote imports these structures from
 * p2mnote.h, and the Python package (ctypes) mirrors them; a change here is an ABI change. */
#include "p2mnote.h"

_Static_assert(sizeof(struct p2mnote_open_options) == 48, "p2mnote_open_options layout");
_Static_assert(sizeof(struct p2mnote_info) == 56, "p2mnote_info layout");
_Static_assert(sizeof(struct p2mnote_walk_step) == 24, "p2mnote_walk_step layout");
_Static_assert(sizeof(struct p2mnote_walk) == 40 + 5 * 24, "p2mnote_walk layout");
_Static_assert(sizeof(struct p2mnote_registers) == 24 + 27 * 8, "p2mnote_registers layout");
_Static_assert(sizeof(p2mnote_status) == 4 && sizeof(p2mnote_space) == 4, "enums are 32-bit");
