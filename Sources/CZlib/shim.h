// zlib (Debian's zlib1g-dev): its CRC-32, for the ZIP files PanList streams (Sources/PanListCore/ZipStream.swift).
#include <zlib.h>
