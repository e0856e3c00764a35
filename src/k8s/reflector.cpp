#include "k8s/reflector.hpp"

#include <algorithm>
#include <exception>

#include <fmt/format.h>

#include "core/log.hpp"
#include "k8s/line_buffer.hpp"

namespace retina::k8s {
namespace {

// One watch event (a whole object) is far below this; anything longer is a
// broken stream.
constexpr size_t kMaxLine = 64u << 20;
// One LIST page (opts_.page_size objects) is far below this.
constexpr size_t kMaxListPage = 256u << 20;
// A watch that has not ended by itself this long after timeoutSeconds is cut.
constexpr std::chrono::seconds kWatchSlack{30};
// A watch ending normally sooner than this without a single event is suspect.
constexpr std::chrono::seconds kMinQuietWatch{1};
// Restarts of a paginated LIST whose continue token expired, before backing off.
constexpr int kMaxListRestarts = 3;

// CRDs that may not be installed: a 404 means "no objects", re-checked slowly.
bool optional_crd(Resource r) { return r == Resource::kMetricsConfigurations || r == Resource::kCaptures; }

std::string message_of(const ApiStatus& s, const HttpResponse& r) {
  if (!s.message.empty()) return s.message;
  std::string body = r.body.substr(0, 200);
  std::replace(body.begin(), body.end(), '\n', ' ');
  return body;
}

}  // namespace

std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Reflector::Reflector(Resource resource, std::string path, std::string field_selector, const WatcherOptions& opts,
                     std::unique_ptr<HttpStream> http, std::shared_ptr<Credentials> credentials,
                     std::unique_ptr<ResourceHandler> handler, ResourceMetrics& metrics, SyncSignal& sync)
    : resource_(resource),
      path_(std::move(path)),
      field_selector_(std::move(field_selector)),
      opts_(opts),
      http_(std::move(http)),
      credentials_(std::move(credentials)),
      handler_(std::move(handler)),
      metrics_(metrics),
      sync_(sync),
      rng_(std::random_device{}()) {
  metrics_.enabled.store(true, std::memory_order_relaxed);
}

Reflector::~Reflector() { stop(); }

void Reflector::start() {
  std::lock_guard l(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { run(); });
}

void Reflector::request_stop() {
  {
    std::lock_guard l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  http_->interrupt();
}

void Reflector::stop() {
  request_stop();
  if (thread_.joinable()) thread_.join();
  metrics_.watch_up.store(false, std::memory_order_relaxed);
}

bool Reflector::synced() const {
  std::lock_guard l(mu_);
  return synced_;
}

ResourceStatus Reflector::status() const {
  ResourceStatus s;
  s.resource = resource_;
  s.enabled = true;
  s.watch_up = metrics_.watch_up.load(std::memory_order_relaxed);
  s.objects = metrics_.objects.load(std::memory_order_relaxed);
  s.relists = metrics_.relists.load(std::memory_order_relaxed);
  const double last = metrics_.last_sync_unix.load(std::memory_order_relaxed);
  if (last > 0) {
    s.last_sync = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(last)));
  }
  std::lock_guard l(mu_);
  s.synced = synced_;
  s.resource_version = resource_version_;
  s.last_error = last_error_;
  return s;
}

void Reflector::record_error(ErrorReason reason, std::string message) {
  metrics_.error(reason);
  log::warn("k8s", "watch error",
            {{"resource", to_string(resource_)}, {"reason", to_string(reason)}, {"error", message}});
  std::lock_guard l(mu_);
  last_error_ = fmt::format("{}: {}", to_string(reason), message);
}

void Reflector::clear_error() {
  std::lock_guard l(mu_);
  last_error_.clear();
}

void Reflector::set_synced() {
  {
    std::lock_guard l(sync_.mu);
    std::lock_guard l2(mu_);
    synced_ = true;
  }
  sync_.cv.notify_all();
}

bool Reflector::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock l(mu_);
  return !cv_.wait_for(l, d, [this] { return stopping_; });
}

std::chrono::milliseconds Reflector::backoff(uint32_t failures) {
  double d = static_cast<double>(opts_.backoff_initial.count());
  for (uint32_t i = 0; i < failures && d < static_cast<double>(opts_.backoff_max.count()); ++i) d *= 2;
  d = std::min(d, static_cast<double>(opts_.backoff_max.count()));
  // Jitter in [d/2, d): reconnecting agents of a whole cluster spread out.
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return std::chrono::milliseconds(static_cast<int64_t>(d * jitter(rng_)));
}

Reflector::Outcome Reflector::http_failure(const HttpResponse& r, std::string_view what) {
  if (r.stopped) return Outcome::kStopped;
  if (!r.error.empty() && r.status == 0) {
    record_error(r.timed_out ? ErrorReason::kTimeout : ErrorReason::kConnect, fmt::format("{}: {}", what, r.error));
    return Outcome::kError;
  }
  const ApiStatus st = handler_->parse_status(r.body);
  if (r.status == 404 && optional_crd(resource_)) return Outcome::kAbsent;
  const ErrorReason reason = reason_for_status(r.status);
  record_error(reason, fmt::format("{}: HTTP {}: {}", what, r.status, message_of(st, r)));
  // An optional CRD's stream: without the RBAC rule for it the rest of the
  // watcher must still count as synced. It keeps retrying.
  if (r.status == 403 && optional_crd(resource_)) set_synced();
  if (r.status == 401 && credentials_->from_file()) {
    // The token may have rotated since the last periodic reload.
    if (auto s = credentials_->reload(); !s) record_error(ErrorReason::kUnauthorized, s.error().message);
  }
  return r.status == 410 ? Outcome::kRelist : Outcome::kError;
}

Reflector::Outcome Reflector::list() {
  metrics_.watch_up.store(false, std::memory_order_relaxed);
  std::string list_rv;
  std::string cont;
  int restarts = 0;
  handler_->begin_list();
  for (;;) {
    std::string path = fmt::format("{}?limit={}", path_, opts_.page_size);
    if (!cont.empty()) path += "&continue=" + url_encode(cont);
    if (!field_selector_.empty()) path += "&fieldSelector=" + field_selector_;
    HttpResponse r =
        http_->get(HttpRequest{.path = path, .timeout = opts_.list_timeout, .gzip = true, .max_body = kMaxListPage});
    if (r.stopped) return Outcome::kStopped;
    if (!r.ok()) {
      if (r.status == 410 && !cont.empty() && restarts < kMaxListRestarts) {
        // The continue token expired between pages: start the list over.
        record_error(ErrorReason::kGone, "list continuation expired; listing again");
        ++restarts;
        cont.clear();
        list_rv.clear();
        handler_->begin_list();
        continue;
      }
      if (r.status >= 200 && r.status < 300) {  // the body was cut short
        record_error(r.timed_out ? ErrorReason::kTimeout : ErrorReason::kStream, "list: " + r.error);
        return Outcome::kError;
      }
      return http_failure(r, "list");
    }
    auto page = handler_->add_page(r.body);
    if (!page) {
      record_error(ErrorReason::kDecode, page.error().message);
      return Outcome::kError;
    }
    if (page->invalid_values) metrics_.error(ErrorReason::kInvalidObject, page->invalid_values);
    if (list_rv.empty()) list_rv = page->resource_version;
    cont = std::move(page->continue_token);
    if (cont.empty()) break;
  }
  handler_->commit_list();
  metrics_.objects.store(handler_->objects(), std::memory_order_relaxed);
  metrics_.mark_synced_now();
  bool relist = false;
  {
    std::lock_guard l(mu_);
    resource_version_ = list_rv;
    last_error_.clear();
    relist = listed_once_;
    listed_once_ = true;
  }
  if (relist) metrics_.relists.fetch_add(1, std::memory_order_relaxed);
  set_synced();
  return Outcome::kListed;
}

Reflector::Outcome Reflector::watch() {
  std::string rv;
  {
    std::lock_guard l(mu_);
    rv = resource_version_;
  }
  const int64_t base = std::max<int64_t>(1, opts_.watch_timeout.count());
  const int64_t timeout_s = std::uniform_int_distribution<int64_t>(base, 2 * base - 1)(rng_);
  std::string path = fmt::format("{}?watch=1&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={}", path_,
                                 url_encode(rv), timeout_s);
  if (!field_selector_.empty()) path += "&fieldSelector=" + field_selector_;

  LineBuffer lines(kMaxLine);
  const auto started = std::chrono::steady_clock::now();
  uint64_t received = 0;
  bool gone = false;        // ERROR event 410
  bool lost = false;        // a line could not be parsed: an event may be missing
  bool too_long = false;
  std::string status_error; // ERROR event other than 410
  auto on_line = [&](std::string_view line) -> bool {
    auto ev = handler_->apply_event(line);
    if (!ev) {
      record_error(ErrorReason::kDecode, ev.error().message);
      lost = true;
      return false;
    }
    metrics_.event(ev->type);
    ++received;
    if (ev->invalid_values) metrics_.error(ErrorReason::kInvalidObject, ev->invalid_values);
    if (ev->type == EventType::kError) {
      if (ev->status.code == 410) {
        record_error(ErrorReason::kGone, fmt::format("watch: {}", ev->status.message));
        gone = true;
      } else {
        status_error = fmt::format("watch ERROR event: code {} {}: {}", ev->status.code, ev->status.reason,
                                   ev->status.message);
      }
      return false;
    }
    if (!ev->resource_version.empty()) {
      std::lock_guard l(mu_);
      resource_version_ = ev->resource_version;
    }
    metrics_.mark_synced_now();
    if (ev->type != EventType::kBookmark) metrics_.objects.store(handler_->objects(), std::memory_order_relaxed);
    return true;
  };
  HttpRequest req;
  req.path = std::move(path);
  req.timeout = std::chrono::seconds(timeout_s) + kWatchSlack;
  req.on_headers = [&](long status) {
    if (status == 200) {
      metrics_.watch_up.store(true, std::memory_order_relaxed);
      clear_error();
    }
  };
  req.on_body = [&](std::string_view chunk) -> bool {
    switch (lines.feed(chunk, on_line)) {
      case LineBuffer::Result::kOk: return true;
      case LineBuffer::Result::kStopped: return false;
      case LineBuffer::Result::kTooLong: too_long = true; return false;
    }
    return false;
  };
  HttpResponse r = http_->get(req);
  metrics_.watch_up.store(false, std::memory_order_relaxed);

  if (r.stopped) return Outcome::kStopped;
  if (gone) return Outcome::kRelist;
  if (lost) return Outcome::kRelist;
  if (too_long) {
    record_error(ErrorReason::kDecode, fmt::format("watch: a line longer than {} bytes", kMaxLine));
    return Outcome::kRelist;
  }
  if (!status_error.empty()) {
    record_error(ErrorReason::kStatusEvent, status_error);
    return Outcome::kError;
  }
  if (r.status != 200) return http_failure(r, "watch");
  if (!r.error.empty()) {
    record_error(r.timed_out ? ErrorReason::kTimeout : ErrorReason::kStream, "watch: " + r.error);
    return Outcome::kError;
  }
  if (lines.pending()) {
    record_error(ErrorReason::kDecode, "watch: the stream ended inside a line");
    return Outcome::kRelist;
  }
  if (received == 0 && std::chrono::steady_clock::now() - started < kMinQuietWatch) {
    // Ended at once with nothing in it (a proxy closing streams?): back off
    // rather than reconnect in a tight loop.
    record_error(ErrorReason::kStream, "watch: closed by the server right after it opened");
    return Outcome::kError;
  }
  return Outcome::kClean;
}

void Reflector::run() {
  uint32_t failures = 0;
  bool need_list = true;
  auto stopping = [this] {
    std::lock_guard l(mu_);
    return stopping_;
  };
  while (!stopping()) {
    Outcome o;
    auto started = std::chrono::steady_clock::now();
    try {
      o = need_list ? list() : watch();
    } catch (const std::exception& e) {
      record_error(ErrorReason::kInternal, e.what());
      o = Outcome::kError;
    } catch (...) {
      record_error(ErrorReason::kInternal, "unknown exception");
      o = Outcome::kError;
    }
    // A watch that stayed up long enough proves the path healthy again.
    const bool healthy = !need_list && std::chrono::steady_clock::now() - started >= opts_.backoff_reset;
    if (healthy) failures = 0;
    switch (o) {
      case Outcome::kStopped: return;
      case Outcome::kListed:
        need_list = false;
        break;
      case Outcome::kClean:
        failures = 0;
        break;
      case Outcome::kRelist:
        need_list = true;
        // The first relist is immediate; repeated ones back off.
        if (failures > 0 && !sleep_for(backoff(failures - 1))) return;
        ++failures;
        break;
      case Outcome::kError:
        if (!sleep_for(backoff(failures))) return;
        ++failures;
        break;
      case Outcome::kAbsent: {
        bool first = false;
        {
          std::lock_guard l(mu_);
          first = !absent_logged_;
          absent_logged_ = true;
          last_error_ = fmt::format("not_found: the {}.retina.sh CRD is not installed", to_string(resource_));
        }
        if (first) {
          log::info("k8s", "CRD not installed; checking again later",
                    {{"crd", fmt::format("{}.retina.sh", to_string(resource_))},
                     {"retry", fmt::format("{}s", opts_.crd_retry_interval.count() / 1000.0)}});
        }
        // Known to be absent: no objects (the CRD may have been removed), nothing to wait for.
        handler_->begin_list();
        handler_->commit_list();
        metrics_.objects.store(0, std::memory_order_relaxed);
        set_synced();
        if (!sleep_for(opts_.crd_retry_interval)) return;
        break;
      }
    }
  }
}

}  // namespace retina::k8s
