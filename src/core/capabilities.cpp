#include "retina/capabilities.hpp"

#include <dirent.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "core/file.hpp"
#include "core/log.hpp"

namespace retina {
namespace {

// linux/capability.h's names, by number (0..40).
constexpr std::string_view kNames[] = {
    "CHOWN",          "DAC_OVERRIDE",    "DAC_READ_SEARCH", "FOWNER",       "FSETID",       "KILL",
    "SETGID",         "SETUID",          "SETPCAP",         "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
    "NET_BROADCAST",  "NET_ADMIN",       "NET_RAW",         "IPC_LOCK",     "IPC_OWNER",    "SYS_MODULE",
    "SYS_RAWIO",      "SYS_CHROOT",      "SYS_PTRACE",      "SYS_PACCT",    "SYS_ADMIN",    "SYS_BOOT",
    "SYS_NICE",       "SYS_RESOURCE",    "SYS_TIME",        "SYS_TTY_CONFIG", "MKNOD",      "LEASE",
    "AUDIT_WRITE",    "AUDIT_CONTROL",   "SETFCAP",         "MAC_OVERRIDE", "MAC_ADMIN",    "SYSLOG",
    "WAKE_ALARM",     "BLOCK_SUSPEND",   "AUDIT_READ",      "PERFMON",      "BPF",          "CHECKPOINT_RESTORE",
};

constexpr unsigned kSetpcap = static_cast<unsigned>(Capability::kSetpcap);

struct RawSets {
  uint64_t effective = 0, permitted = 0, inheritable = 0;
};

bool raw_capget(RawSets& out) noexcept {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0) return false;
  out.effective = data[0].effective | (uint64_t{data[1].effective} << 32);
  out.permitted = data[0].permitted | (uint64_t{data[1].permitted} << 32);
  out.inheritable = data[0].inheritable | (uint64_t{data[1].inheritable} << 32);
  return true;
}

bool raw_capset(const RawSets& s) noexcept {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  for (int i = 0; i < 2; ++i) {
    data[i].effective = static_cast<uint32_t>(s.effective >> (32 * i));
    data[i].permitted = static_cast<uint32_t>(s.permitted >> (32 * i));
    data[i].inheritable = static_cast<uint32_t>(s.inheritable >> (32 * i));
  }
  return ::syscall(SYS_capset, &hdr, data) == 0;
}

unsigned last_cap() {
  auto text = read_file("/proc/sys/kernel/cap_last_cap", 64);
  if (!text) return 40;
  const unsigned long n = std::strtoul(text->c_str(), nullptr, 10);
  return n > 0 && n < 64 ? static_cast<unsigned>(n) : 40;
}

// What the signal handler applies: one request at a time (drop_mu).
std::atomic<uint64_t> g_keep{~uint64_t{0}};
std::atomic<unsigned> g_last_cap{40};

// Lowers the calling thread to g_keep. Async-signal-safe: raw syscalls only.
void restrict_this_thread() noexcept {
  const int saved = errno;
  const uint64_t keep = g_keep.load();
  RawSets cur;
  if (raw_capget(cur)) {
    // The bounding set first, while CAP_SETPCAP may still be effective.
    if (cur.effective & (uint64_t{1} << kSetpcap)) {
      const unsigned last = g_last_cap.load();
      for (unsigned c = 0; c <= last; ++c) {
        if (keep & (uint64_t{1} << c)) continue;
        if (::prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1) (void)::prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
      }
    }
    (void)::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    RawSets next;
    next.permitted = cur.permitted & keep;
    next.effective = next.permitted;
    next.inheritable = 0;
    (void)raw_capset(next);
  }
  (void)::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  errno = saved;
}

void on_restrict_signal(int) { restrict_this_thread(); }

// A real-time signal nothing else in the process uses. Its handler stays
// installed: a thread that had it blocked runs it whenever it unblocks.
int restrict_signal() { return SIGRTMAX - 3; }

std::vector<pid_t> task_ids() {
  std::vector<pid_t> out;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] >= '0' && e->d_name[0] <= '9') out.push_back(static_cast<pid_t>(std::atoi(e->d_name)));
    }
    ::closedir(d);
  }
  return out;
}

Result<ThreadCapabilities> task_capabilities(pid_t tid) {
  auto text = read_file(fmt::format("/proc/self/task/{}/status", tid), 1 << 16);
  if (!text) return unexpected(text.error());
  return parse_status_capabilities(*text);
}

bool same_sets(const ThreadCapabilities& a, const ThreadCapabilities& b) {
  return a.effective == b.effective && a.permitted == b.permitted && a.bounding == b.bounding &&
         a.inheritable == b.inheritable && a.ambient == b.ambient;
}

std::string task_name(pid_t tid) {
  auto text = read_file(fmt::format("/proc/self/task/{}/comm", tid), 256);
  if (!text) return "?";
  while (!text->empty() && text->back() == '\n') text->pop_back();
  return *text;
}

}  // namespace

std::string capability_short_name(unsigned number) {
  if (number < std::size(kNames)) return std::string(kNames[number]);
  return fmt::format("{}", number);
}

std::string capability_name(unsigned number) { return "CAP_" + capability_short_name(number); }

std::vector<std::string> short_names(CapabilitySet s) {
  std::vector<std::string> out;
  for (unsigned n = 0; n < 64; ++n)
    if (s.has_number(n)) out.push_back(capability_short_name(n));
  return out;
}

std::string to_string(CapabilitySet s) {
  std::string out;
  for (unsigned n = 0; n < 64; ++n) {
    if (!s.has_number(n)) continue;
    if (!out.empty()) out += ", ";
    out += capability_name(n);
  }
  return out.empty() ? "none" : out;
}

std::optional<Capability> parse_capability(std::string_view name) {
  std::string upper;
  for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string_view s = upper;
  if (s.substr(0, 4) == "CAP_") s.remove_prefix(4);
  for (unsigned n = 0; n < std::size(kNames); ++n)
    if (kNames[n] == s) return static_cast<Capability>(n);
  return std::nullopt;
}

Result<ThreadCapabilities> parse_status_capabilities(std::string_view status) {
  ThreadCapabilities out;
  const std::pair<std::string_view, CapabilitySet*> fields[] = {{"CapInh:", &out.inheritable},
                                                                 {"CapPrm:", &out.permitted},
                                                                 {"CapEff:", &out.effective},
                                                                 {"CapBnd:", &out.bounding},
                                                                 {"CapAmb:", &out.ambient}};
  unsigned found = 0;
  size_t pos = 0;
  while (pos < status.size()) {
    size_t end = status.find('\n', pos);
    if (end == std::string_view::npos) end = status.size();
    const std::string_view line = status.substr(pos, end - pos);
    pos = end + 1;
    for (const auto& [key, set] : fields) {
      if (line.substr(0, key.size()) != key) continue;
      const std::string value(line.substr(key.size()));
      char* rest = nullptr;
      errno = 0;
      const unsigned long long bits = std::strtoull(value.c_str(), &rest, 16);
      if (errno != 0 || rest == value.c_str())
        return unexpected(Error::invalid(fmt::format("status: cannot read {} '{}'", key, value)));
      *set = CapabilitySet::from_bits(bits);
      ++found;
    }
  }
  if (found != std::size(fields))
    return unexpected(Error::invalid("status: missing CapInh/CapPrm/CapEff/CapBnd/CapAmb lines"));
  return out;
}

Result<ThreadCapabilities> current_capabilities() {
  RawSets raw;
  if (!raw_capget(raw)) return unexpected(Error::system("capget", errno));
  ThreadCapabilities out;
  out.effective = CapabilitySet::from_bits(raw.effective);
  out.permitted = CapabilitySet::from_bits(raw.permitted);
  out.inheritable = CapabilitySet::from_bits(raw.inheritable);
  uint64_t bounding = 0, ambient = 0;
  const unsigned last = last_cap();
  for (unsigned c = 0; c <= last; ++c) {
    if (::prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1) bounding |= uint64_t{1} << c;
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1) ambient |= uint64_t{1} << c;
  }
  out.bounding = CapabilitySet::from_bits(bounding);
  out.ambient = CapabilitySet::from_bits(ambient);
  return out;
}

CapabilitySet missing_capabilities(CapabilitySet needed, CapabilitySet effective) {
  CapabilitySet have = effective;
  // A kernel without CAP_BPF (before 5.8) checks CAP_SYS_ADMIN where later
  // ones check CAP_BPF or CAP_PERFMON.
  if (last_cap() < static_cast<unsigned>(Capability::kBpf) && effective.has(Capability::kSysAdmin))
    have |= CapabilitySet{Capability::kBpf, Capability::kPerfmon};
  return needed - have;
}

Result<CapabilityDrop> restrict_capabilities(CapabilitySet keep) {
  static std::mutex drop_mu;
  std::lock_guard lock(drop_mu);
  auto before = current_capabilities();
  if (!before) return unexpected(before.error());

  g_last_cap.store(last_cap());
  g_keep.store(keep.bits());
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction sa {};
    sa.sa_handler = on_restrict_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ::sigaction(restrict_signal(), &sa, nullptr);
  });

  restrict_this_thread();
  const pid_t self = static_cast<pid_t>(::syscall(SYS_gettid));
  auto target = task_capabilities(self);
  if (!target) return unexpected(target.error());

  // Threads started meanwhile by a thread not yet lowered inherit its sets:
  // go round until every thread matches.
  std::map<pid_t, int> signalled;
  std::vector<pid_t> behind;
  for (int round = 0; round < 100; ++round) {
    behind.clear();
    for (pid_t tid : task_ids()) {
      if (tid == self) continue;
      auto caps = task_capabilities(tid);
      if (!caps) continue;  // exited
      if (same_sets(*caps, *target)) continue;
      behind.push_back(tid);
      // Once per 10 rounds: a signal already pending is not queued twice.
      if (signalled[tid]++ % 10 == 0) ::syscall(SYS_tgkill, ::getpid(), tid, restrict_signal());
    }
    if (behind.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!behind.empty()) {
    std::string names;
    for (pid_t tid : behind) names += fmt::format("{}{} ({})", names.empty() ? "" : ", ", tid, task_name(tid));
    return unexpected(Error::internal(fmt::format(
        "threads {} still hold more than {} (signal {} blocked?)", names, to_string(target->permitted),
        restrict_signal())));
  }

  CapabilityDrop out;
  out.kept = target->permitted;
  out.dropped = before->permitted - target->permitted;
  out.bounding_reduced = target->bounding == (before->bounding & keep);
  out.threads = signalled.size() + 1;
  return out;
}

}  // namespace retina
