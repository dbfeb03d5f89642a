// collm_version: the version this library was built as.
#include "collm/version.h"

const char *collm_version(void) { return COLLM_VERSION_STRING; }
