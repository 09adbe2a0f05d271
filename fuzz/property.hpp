// property.hpp - the fuzz targets' one way to report a broken property:
// say which, and abort, so that libFuzzer keeps the input that did it.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace berkeley {

inline void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "property broken: %s\n", what);
        std::abort();
    }
}

}  // namespace berkeley
