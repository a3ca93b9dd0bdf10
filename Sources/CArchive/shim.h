#ifndef PANLIST_CARCHIVE_SHIM_H
#define PANLIST_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#endif
