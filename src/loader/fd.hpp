// The loader's name for retina's file-descriptor owner (core/fd.hpp).
#pragma once

#include "core/fd.hpp"

namespace retina::loader {
using retina::UniqueFd;
}  // namespace retina::loader
