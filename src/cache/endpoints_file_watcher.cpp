// EndpointsFileWatcher: inotify on the file's directory, reload on change.
//
// The directory is watched rather than the file: an editor that saves by
// writing a temporary file and renaming it over the original replaces the
// inode, which would end a watch on the file itself. Directory events name
// the entry, so we react to IN_CLOSE_WRITE / IN_MOVED_TO of our name (a
// complete new version), IN_CREATE of a symlink with our name (ln -s) and
// any change of "..data", the symlink Kubernetes swaps to update a
// ConfigMap volume. IN_CREATE of a regular file is ignored: its content
// follows and IN_CLOSE_WRITE reports it. Deletions change nothing: the last
// good content stays until a new valid file appears.
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>
#include <thread>

#include "cache/endpoints_file.hpp"

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

namespace retina {
namespace {

constexpr uint32_t kDirEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
// How often the background thread retries a missing directory.
constexpr std::chrono::milliseconds kIdlePoll{1000};

}  // namespace

EndpointsFileWatcher::EndpointsFileWatcher(std::string path, std::shared_ptr<IpCache> cache, Options options)
    : path_(std::move(path)), cache_(std::move(cache)), options_(std::move(options)) {
  std::filesystem::path p(path_);
  dir_ = p.has_parent_path() ? p.parent_path().string() : std::string(".");
  base_ = p.filename().string();
  status_.path = path_;
}

Result<std::unique_ptr<EndpointsFileWatcher>> EndpointsFileWatcher::create(std::string path,
                                                                            std::shared_ptr<IpCache> cache,
                                                                            Options options) {
  if (!cache) return unexpected(Error::invalid("EndpointsFileWatcher: no IpCache"));
  if (path.empty()) return unexpected(Error::invalid("EndpointsFileWatcher: empty path"));
  if (std::filesystem::path(path).filename().empty())
    return unexpected(Error::invalid(fmt::format("endpoints file {}: names a directory, not a file", path)));
  std::unique_ptr<EndpointsFileWatcher> w(new EndpointsFileWatcher(std::move(path), std::move(cache), std::move(options)));
  w->inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (w->inotify_fd_ < 0) return unexpected(Error::system("inotify_init1", errno));
  w->stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->stop_fd_ < 0) return unexpected(Error::system("eventfd", errno));
  {
    std::lock_guard l(w->load_mu_);
    w->ensure_watch();
    w->load(true);
  }
  return w;
}

EndpointsFileWatcher::~EndpointsFileWatcher() {
  stop();
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

// (Re)adds the directory watch; a directory that does not exist yet is
// retried on the next poll. Returns silently: the status says what is missing.
void EndpointsFileWatcher::ensure_watch() {
  if (wd_ >= 0) return;
  wd_ = ::inotify_add_watch(inotify_fd_, dir_.c_str(), kDirEvents);
}

Status EndpointsFileWatcher::poll(std::chrono::milliseconds timeout) {
  {
    std::lock_guard l(load_mu_);
    if (wd_ < 0) {
      ensure_watch();
      if (wd_ >= 0) load(false);  // the directory appeared, maybe with the file
    }
  }
  struct pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  int n;
  do {
    n = ::poll(fds, 2, static_cast<int>(timeout.count()));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return unexpected(Error::system("poll(inotify)", errno));
  if (n == 0 || !(fds[0].revents & POLLIN)) return ok();

  std::lock_guard l(load_mu_);

  bool changed = false, lost_watch = false;
  alignas(struct inotify_event) char buf[16 * 1024];
  for (;;) {
    ssize_t len = ::read(inotify_fd_, buf, sizeof buf);
    if (len < 0 && errno == EINTR) continue;
    if (len < 0 && errno == EAGAIN) break;
    if (len < 0) return unexpected(Error::system("read(inotify)", errno));
    if (len == 0) break;
    for (ssize_t off = 0; off < len;) {
      const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) {
        changed = true;  // events were lost; look at the file
        continue;
      }
      if (ev->wd != wd_) continue;
      if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
        lost_watch = true;
        continue;
      }
      const std::string_view name = ev->len ? std::string_view(ev->name) : std::string_view();
      if (name == "..data") {
        changed = true;
      } else if (name == base_) {
        if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) changed = true;
        if (ev->mask & IN_CREATE) {
          struct stat sb {};
          if (::lstat(path_.c_str(), &sb) == 0 && S_ISLNK(sb.st_mode)) changed = true;
        }
      }
    }
  }
  if (lost_watch) {
    // The directory was removed or renamed; watch whatever has that name now.
    if (wd_ >= 0) ::inotify_rm_watch(inotify_fd_, wd_);
    wd_ = -1;
    ensure_watch();
    changed = wd_ >= 0;
  }
  if (changed) load(false);
  return ok();
}

namespace {

// yaml-cpp builds its node tree from many small allocations, interleaved
// with the endpoints made from it. Freeing the tree then leaves the
// endpoints scattered over pages that can never go back to the kernel
// (10k endpoints kept ~45 MiB resident). Parsing on a short-lived thread
// puts the tree and the first copies in that thread's malloc arena; the
// copies made here are compact, and the parse arena empties completely.
Result<std::vector<EndpointPtr>> parse_compact(std::string_view text) {
  std::optional<Result<std::vector<EndpointPtr>>> parsed;
  try {
    std::thread([&] { parsed.emplace(parse_endpoints(text)); }).join();
  } catch (const std::system_error&) {
    parsed.emplace(parse_endpoints(text));  // no thread to be had: parse here
  }
  if (!*parsed) return unexpected((*parsed).error());
  std::vector<EndpointPtr> out;
  out.reserve((*parsed)->size());
  for (const EndpointPtr& ep : **parsed) out.push_back(std::make_shared<const Endpoint>(*ep));
  return out;
}

}  // namespace

void EndpointsFileWatcher::reload() {
  std::lock_guard l(load_mu_);
  load(true);
}

// load_mu_ held. `force` reparses even when the bytes did not change.
void EndpointsFileWatcher::load(bool force) {
  // yaml-cpp's node tree takes about 11 KiB per entry (pods with labels and
  // a workload): 10k endpoints leave ~115 MiB of freed heap behind. The
  // owner may trim once the text, the tree and the cache's superseded index
  // are all freed: declared first, this runs last.
  bool parsed = false;
  struct AfterParse {
    const bool& parsed;
    const std::function<void()>& hook;
    ~AfterParse() {
      if (parsed && hook) hook();
    }
  } after{parsed, options_.after_parse};
  auto text = read_endpoints_text(path_);
  if (!text) {
    // Missing or unreadable: keep what the cache has.
    report(false, text.error().message);
    return;
  }
  const uint64_t hash = XXH3_64bits(text->data(), text->size());
  if (!force && have_applied_ && hash == applied_hash_) {
    bool was_ok;
    {
      std::lock_guard s(status_mu_);
      was_ok = status_.ok;
    }
    if (was_ok) return;  // e.g. touched, or an event for a sibling; nothing to do
  }
  auto eps = parse_compact(*text);
  parsed = true;
  if (!eps) {
    report(false, eps.error().wrap(path_).message);
    return;
  }
  const size_t count = eps->size();
  cache_->replace_source(EndpointSource::kFile, std::move(*eps), options_.grace);
  applied_hash_ = hash;
  have_applied_ = true;
  {
    std::lock_guard s(status_mu_);
    status_.loaded = true;
    ++status_.reloads;
    status_.endpoints = count;
    status_.last_reload = std::chrono::system_clock::now();
  }
  report(true, {});
}

void EndpointsFileWatcher::report(bool ok_now, std::string error) {
  EndpointsFileStatus copy;
  {
    std::lock_guard s(status_mu_);
    status_.ok = ok_now;
    if (!ok_now) ++status_.failures;
    status_.last_error = std::move(error);
    copy = status_;
  }
  if (options_.on_load) {
    try {
      options_.on_load(copy);
    } catch (...) {
      // A throwing callback must not stop the watcher.
    }
  }
}

Status EndpointsFileWatcher::start() {
  if (thread_.joinable()) return unexpected(Error::invalid("EndpointsFileWatcher already started"));
  stopping_.store(false);
  thread_ = std::thread([this] {
    while (!stopping_.load(std::memory_order_relaxed)) {
      auto st = poll(kIdlePoll);
      if (!st) {
        report(false, st.error().message);
        std::this_thread::sleep_for(kIdlePoll);  // do not spin on a failing poll()
      }
    }
  });
  return ok();
}

void EndpointsFileWatcher::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(stop_fd_, &one, sizeof one);
  thread_.join();
  uint64_t drained;
  n = ::read(stop_fd_, &drained, sizeof drained);
}

EndpointsFileStatus EndpointsFileWatcher::status() const {
  std::lock_guard s(status_mu_);
  return status_;
}

}  // namespace retina
