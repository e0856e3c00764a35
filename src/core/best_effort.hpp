// Threads that serve followers (Hubble GetFlows, /flows?follow=1) run at a
// lower priority than the pipeline and the ring-buffer reader: a follower
// is best effort and loses flows of its own (counted) when it falls
// behind, but its encoding and sending must never take the CPU that the
// kernel's events need. Raising a thread's nice value needs no privilege;
// lowering it again would (CAP_SYS_NICE), so a pool thread that once
// served a follower stays at the lower priority.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

namespace retina {

inline constexpr int kBestEffortNice = 10;

inline void make_this_thread_best_effort() noexcept {
  thread_local bool done = false;
  if (done) return;
  done = true;
  // PRIO_PROCESS with a thread id sets that thread's nice value (Linux).
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kBestEffortNice);
}

}  // namespace retina
