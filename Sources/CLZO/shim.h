#include <lzo/lzo1x.h>
/* lzo_init() is a macro; a function Swift can call. */
static inline int p2m_lzo_init(void) { return lzo_init(); }
