#include <lzo/lzo1x.h>
/* lzo_init() is a macro; a function Swift can call. */
static inline int p2m_lzo_init(void) { return lzo_init(); }
static inline unsigned long p2m_lzo1x_1_mem_compress(void) { return LZO1X_1_MEM_COMPRESS; }
