// The structured logger is public (include/retina/log.hpp): the agent and
// embedders log through it too. This path stays for code inside src/.
#pragma once

#include "retina/log.hpp"
