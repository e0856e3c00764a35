// Routes libbpf's messages (including verifier logs of failed loads) to
// the structured logger (component=libbpf) instead of stderr.
#pragma once

namespace retina::loader {

// Idempotent; safe from any thread.
void install_libbpf_logging();

}  // namespace retina::loader
