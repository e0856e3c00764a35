// Umbrella header for embedding retina.
#pragma once

#include "retina/config.hpp"
#include "retina/decoder.hpp"
#include "retina/dns.hpp"
#include "retina/endpoint.hpp"
#include "retina/engine.hpp"
#include "retina/error.hpp"
#include "retina/features.hpp"
#include "retina/flow.hpp"
#include "retina/ip.hpp"
#include "retina/ip_cache.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"
#include "retina/pipeline.hpp"
#include "retina/plugin.hpp"
