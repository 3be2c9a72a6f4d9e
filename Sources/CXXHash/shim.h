/* The state struct's layout is visible so that Swift holds it by value (no heap state). */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
