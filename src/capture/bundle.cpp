#include "capture/bundle.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

extern char** environ;

namespace retina::capture {
namespace {

constexpr size_t kMaxCommandOutput = 16u << 20;
constexpr auto kCommandTimeout = std::chrono::seconds(10);

// Runs `sh -c cmd` with stdin closed; stdout and stderr together. Killed
// when it runs too long or prints too much.
std::string run_command(const char* cmd) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return fmt::format("(cannot run: pipe: {})\n", std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
  const char* argv[] = {"/bin/sh", "-c", cmd, nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/bin/sh", &fa, nullptr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  std::string out;
  if (rc != 0) {
    ::close(pipefd[0]);
    return fmt::format("(cannot run: {})\n", std::strerror(rc));
  }
  const auto deadline = std::chrono::steady_clock::now() + kCommandTimeout;
  bool killed = false;
  char buf[65536];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || out.size() > kMaxCommandOutput) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    pollfd p{pipefd[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (killed) out += "\n(stopped: took too long or printed too much)\n";
  else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) out += fmt::format("(exit status {})\n", WEXITSTATUS(status));
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fmt::format("(cannot read {}: {})\n", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

const std::vector<StateSource>& node_state_sources() {
  static const std::vector<StateSource> kSources = {
      {"ip-resources.txt",
       {"ip addr show", "ip neigh show", "ip rule show", "ip route show table all", "ip -6 route show table all"},
       {}},
      {"iptables-rules.txt",
       {"iptables-save", "iptables-save -t nat", "iptables-save -t mangle", "ip6tables-save", "nft list ruleset"},
       {}},
      {"socket-stats.txt", {"ss -s", "ss -tanp", "ss -uanp"}, {}},
      {"interface-stats.txt", {"ip -s -s link show"}, {"net/dev"}},
      {"conntrack.txt", {}, {"sys/net/netfilter/nf_conntrack_count", "sys/net/netfilter/nf_conntrack_max"}},
      {"proc-net-netstat.txt", {}, {"net/netstat"}},
      {"proc-net-snmp.txt", {}, {"net/snmp", "net/snmp6"}},
      {"proc-net-sockstat.txt", {}, {"net/sockstat", "net/sockstat6"}},
  };
  return kSources;
}

std::vector<BundleEntry> collect_node_state(const std::string& proc_root) {
  std::vector<BundleEntry> out;
  for (const auto& s : node_state_sources()) {
    BundleEntry e;
    e.name = s.file;
    for (const char* cmd : s.commands) {
      e.content += fmt::format("### {}\n", cmd);
      e.content += run_command(cmd);
      e.content += "\n";
    }
    for (const char* f : s.proc_files) {
      const std::string path = fmt::format("{}/{}", proc_root, f);
      e.content += fmt::format("### {}\n", path);
      e.content += read_text(path);
      e.content += "\n";
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::string bundle_name(const std::string& capture, const std::string& node, int64_t unix_seconds) {
  const time_t t = static_cast<time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  return fmt::format("{}-{}-{:04}{:02}{:02}{:02}{:02}{:02}UTC.tar.gz", capture, node, tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

retina::Status write_bundle(const std::string& path, const std::vector<BundleEntry>& entries) {
  const std::string tmp = path + ".partial";
  archive* a = archive_write_new();
  if (!a) return unexpected(Error::internal("archive_write_new failed"));
  auto fail = [&](std::string_view what) {
    std::string msg = fmt::format("bundle {}: {}: {}", path, what, archive_error_string(a) ? archive_error_string(a) : "");
    archive_write_free(a);
    ::unlink(tmp.c_str());
    return unexpected(Error::internal(std::move(msg)));
  };
  if (archive_write_add_filter_gzip(a) != ARCHIVE_OK || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK) {
    return fail("setup");
  }
  if (archive_write_open_filename(a, tmp.c_str()) != ARCHIVE_OK) return fail("open");
  const time_t now = ::time(nullptr);
  std::vector<char> buf(1 << 16);
  for (const auto& e : entries) {
    archive_entry* ae = archive_entry_new();
    archive_entry_set_pathname(ae, e.name.c_str());
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_perm(ae, 0640);
    archive_entry_set_mtime(ae, now, 0);
    int fd = -1;
    if (!e.disk_path.empty()) {
      fd = ::open(e.disk_path.c_str(), O_RDONLY | O_CLOEXEC);
      struct stat st{};
      if (fd < 0 || ::fstat(fd, &st) != 0) {
        const int err = errno;
        if (fd >= 0) ::close(fd);
        archive_entry_free(ae);
        archive_write_free(a);
        ::unlink(tmp.c_str());
        return unexpected(Error::system(fmt::format("bundle: open({})", e.disk_path), err));
      }
      archive_entry_set_size(ae, st.st_size);
    } else {
      archive_entry_set_size(ae, static_cast<la_int64_t>(e.content.size()));
    }
    const int hr = archive_write_header(a, ae);
    archive_entry_free(ae);
    if (hr != ARCHIVE_OK) {
      if (fd >= 0) ::close(fd);
      return fail(fmt::format("header of {}", e.name));
    }
    if (fd >= 0) {
      ssize_t n;
      while ((n = ::read(fd, buf.data(), buf.size())) > 0) {
        if (archive_write_data(a, buf.data(), static_cast<size_t>(n)) != n) {
          ::close(fd);
          return fail(fmt::format("data of {}", e.name));
        }
      }
      ::close(fd);
    } else if (!e.content.empty() &&
               archive_write_data(a, e.content.data(), e.content.size()) != static_cast<la_ssize_t>(e.content.size())) {
      return fail(fmt::format("data of {}", e.name));
    }
  }
  if (archive_write_close(a) != ARCHIVE_OK) return fail("close (disk full?)");
  archive_write_free(a);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return unexpected(Error::system(fmt::format("rename({})", path), err));
  }
  return ok();
}

}  // namespace retina::capture
