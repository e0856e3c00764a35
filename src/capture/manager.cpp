// Runs captures: validation, one thread per interface plus a control thread
// per capture (limits, then bundle and outputs), and their status.
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "capture/bundle.hpp"
#include "capture/session.hpp"
#include "capture/targets.hpp"
#include "capture/upload.hpp"
#include "core/flow_json.hpp"
#include "core/log.hpp"
#include "retina/capture.hpp"
#include "retina/ip_cache.hpp"
#include "retina/metrics/registry.hpp"

namespace retina::capture {
namespace fs = std::filesystem;
namespace {

uint64_t now_unix_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

// `path` (absolute, or relative to root) resolved, if it stays under root.
Result<fs::path> under_root(const fs::path& root, const std::string& path, std::string_view what) {
  std::error_code ec;
  const fs::path croot = fs::weakly_canonical(root, ec);
  if (ec) return unexpected(Error::invalid(fmt::format("captureOutputRoot {}: {}", root.string(), ec.message())));
  const fs::path p = fs::weakly_canonical(fs::path(path).is_absolute() ? fs::path(path) : croot / path, ec);
  if (ec) return unexpected(Error::invalid(fmt::format("{} {}: {}", what, path, ec.message())));
  const std::string rs = croot.string(), ps = p.string();
  if (ps != rs && !(ps.size() > rs.size() && ps.compare(0, rs.size(), rs) == 0 && ps[rs.size()] == '/')) {
    return unexpected(Error::invalid(fmt::format("{} {} is outside the capture output root {}", what, path, rs)));
  }
  return p;
}

const char* format_ext(FileFormat f) { return f == FileFormat::kPcapng ? "pcapng" : "pcap"; }

// Interface names are safe file names except for '/' (never in Linux names).
std::string file_for(const std::string& iface, FileFormat f) { return fmt::format("{}.{}", iface, format_ext(f)); }

}  // namespace

const char* to_string(State s) {
  switch (s) {
    case State::kPending: return "Pending";
    case State::kRunning: return "Running";
    case State::kUploading: return "Uploading";
    case State::kCompleted: return "Completed";
    case State::kCancelled: return "Cancelled";
    case State::kFailed: return "Failed";
  }
  return "Unknown";
}

std::string status_to_json(const CaptureStatus& s) {
  std::string out = "{\"name\":";
  json::append_string(out, s.name);
  out += ",\"node\":";
  json::append_string(out, s.node);
  out += ",\"state\":";
  json::append_string(out, to_string(s.state));
  out += ",\"stopReason\":";
  json::append_string(out, s.stop_reason);
  out += ",\"message\":";
  json::append_string(out, s.message);
  out += ",\"bundle\":";
  json::append_string(out, s.bundle);
  out += ",\"outputs\":[";
  for (size_t i = 0; i < s.outputs.size(); ++i) {
    if (i) out.push_back(',');
    json::append_string(out, s.outputs[i]);
  }
  out += "],\"startTime\":";
  json::append_rfc3339(out, s.start_unix_ms * 1000000ull);
  out += ",\"stopTime\":";
  if (s.stop_unix_ms) json::append_rfc3339(out, s.stop_unix_ms * 1000000ull);
  else out += "null";
  uint64_t packets = 0, drops = 0;
  out += ",\"interfaces\":[";
  for (size_t i = 0; i < s.interfaces.size(); ++i) {
    const auto& f = s.interfaces[i];
    packets += f.packets;
    drops += f.kernel_dropped;
    if (i) out.push_back(',');
    out += "{\"name\":";
    json::append_string(out, f.name);
    out += ",\"file\":";
    json::append_string(out, f.file);
    if (f.files.size() > 1) {
      out += ",\"files\":[";
      for (size_t j = 0; j < f.files.size(); ++j) {
        if (j) out.push_back(',');
        json::append_string(out, f.files[j]);
      }
      out += fmt::format("],\"overwrittenPackets\":{}", f.overwritten_packets);
    }
    out += fmt::format(",\"packets\":{},\"bytes\":{},\"kernelDropped\":{},\"interfaceDropped\":{},\"error\":", f.packets,
                       f.bytes, f.kernel_dropped, f.interface_dropped);
    json::append_string(out, f.error);
    out.push_back('}');
  }
  out += fmt::format("],\"packets\":{},\"kernelDropped\":{}}}", packets, drops);
  return out;
}

struct Run {
  Spec spec;
  std::string filter;
  Targets targets;
  fs::path staging;
  std::vector<fs::path> destinations;  // local directories for the bundle
  std::unique_ptr<CaptureLimits> limits;
  std::vector<std::unique_ptr<InterfaceCapture>> interfaces;
  std::vector<std::thread> threads;
  std::thread control;

  mutable std::mutex mu;  // status and finished
  std::condition_variable cv;
  CaptureStatus status;
};

struct Manager::Impl {
  ManagerOptions options;
  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<Run>, std::less<>> runs;
  std::function<void(const CaptureStatus&)> on_change;
  metrics::Counter* captures_started = nullptr;
  metrics::Family<metrics::Counter>* captures_finished = nullptr;
  metrics::Counter* packets_written = nullptr;
  metrics::Counter* kernel_dropped = nullptr;

  Result<std::vector<fs::path>> destinations(const Spec& spec) const;
  void control(const std::shared_ptr<Run>& run);
  void finish(Run& run);
  void publish(Run& run);
};

Manager::Manager() : impl_(std::make_unique<Impl>()) {}

Manager::~Manager() {
  std::vector<std::shared_ptr<Run>> runs;
  {
    std::lock_guard lock(impl_->mu);
    for (auto& [_, r] : impl_->runs) runs.push_back(r);
  }
  for (auto& r : runs) {
    if (r->limits) r->limits->stop(StopReason::kCancelled);
    r->cv.notify_all();
  }
  for (auto& r : runs) {
    if (r->control.joinable()) r->control.join();
  }
}

namespace {

// What a run killed mid-capture leaves: its staging directory and bundles
// not yet renamed into place. No capture runs before create() returns.
void remove_interrupted(const fs::path& root) {
  std::error_code ec;
  const auto removed = fs::remove_all(root / ".staging", ec);
  size_t partial = 0;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && it->path().filename().string().ends_with(".tar.gz.partial") &&
        fs::remove(it->path(), ec)) {
      ++partial;
    }
  }
  if ((removed != static_cast<std::uintmax_t>(-1) && removed > 0) || partial > 0) {
    log::info("capture", "removed what an interrupted run left",
              {{"root", root.string()}, {"staging_entries", removed}, {"partial_bundles", partial}});
  }
}

}  // namespace

Result<std::unique_ptr<Manager>> Manager::create(ManagerOptions options) {
  if (options.node_name.empty()) return unexpected(Error::invalid("capture: node name is required"));
  if (options.output_root.empty() || options.output_root.front() != '/') {
    return unexpected(Error::invalid(fmt::format("captureOutputRoot '{}' must be an absolute path", options.output_root)));
  }
  std::error_code ec;
  fs::create_directories(options.output_root, ec);
  if (ec) return unexpected(Error::invalid(fmt::format("captureOutputRoot {}: {}", options.output_root, ec.message())));
  remove_interrupted(options.output_root);
  std::unique_ptr<Manager> m(new Manager());
  m->impl_->options = std::move(options);
  if (auto* reg = m->impl_->options.registry) {
    m->impl_->captures_started = &reg->counter("retina_capture_started_total", "Packet captures started on this node").with({});
    m->impl_->captures_finished =
        &reg->counter("retina_capture_finished_total", "Packet captures finished, by final state", {"state"});
    m->impl_->packets_written = &reg->counter("retina_capture_packets_total", "Packets written to capture files").with({});
    m->impl_->kernel_dropped = &reg->counter(
        "retina_capture_kernel_dropped_packets_total",
        "Packets the kernel dropped before a capture could read them (pcap_stats ps_drop)").with({});
  }
  return m;
}

const ManagerOptions& Manager::options() const { return impl_->options; }

void Manager::on_change(std::function<void(const CaptureStatus&)> fn) {
  std::lock_guard lock(impl_->mu);
  impl_->on_change = std::move(fn);
}

bool Manager::selects_node(const Spec& spec, const std::vector<std::string>& node_labels) const {
  const std::string& node = impl_->options.node_name;
  if (!spec.node_names.empty() && std::find(spec.node_names.begin(), spec.node_names.end(), node) == spec.node_names.end()) {
    return false;
  }
  if (spec.node_selector.present && !spec.node_selector.matches(node_labels)) return false;
  return true;
}

Result<std::vector<fs::path>> Manager::Impl::destinations(const Spec& spec) const {
  const fs::path root = options.output_root;
  std::vector<fs::path> out;
  std::error_code ec;
  if (!spec.host_path.empty()) {
    auto p = under_root(root, spec.host_path, "outputConfiguration.hostPath");
    if (!p) return unexpected(p.error());
    out.push_back(*p);
  }
  if (!spec.pvc.empty()) {
    if (spec.pvc.find('/') != std::string::npos || spec.pvc == "." || spec.pvc == "..") {
      return unexpected(Error::invalid(fmt::format("outputConfiguration.persistentVolumeClaim '{}' is not a claim name", spec.pvc)));
    }
    const fs::path p = root / "pvc" / spec.pvc;
    if (!fs::is_directory(p, ec)) {
      return unexpected(Error::invalid(fmt::format(
          "outputConfiguration.persistentVolumeClaim '{}' is not mounted on this node (expected at {})", spec.pvc, p.string())));
    }
    out.push_back(p);
  }
  // Uploads still keep a local copy so GET /captures/NAME/download works.
  if (out.empty()) out.push_back(root / "captures");
  return out;
}

Result<CaptureStatus> Manager::start(Spec spec) {
  Impl& m = *impl_;
  const Limits& lim = m.options.limits;
  if (spec.duration.count() <= 0) return unexpected(Error::invalid("captureOption.duration must be above zero"));
  if (spec.duration > lim.max_duration) {
    return unexpected(Error::invalid(fmt::format("captureOption.duration {}s is above the maximum of {}s",
                                                 spec.duration.count() / 1000.0, lim.max_duration.count() / 1000)));
  }
  if (spec.max_capture_bytes > lim.max_capture_bytes) {
    return unexpected(Error::invalid(fmt::format("captureOption.maxCaptureSize {} MB is above the maximum of {} MB",
                                                 spec.max_capture_bytes >> 20, lim.max_capture_bytes >> 20)));
  }
  // Secrets are read only for Capture objects (crd.cpp); here they must be resolved.
  if (!spec.blob_secret_name.empty() && spec.blob_sas_url.empty()) {
    return unexpected(Error::invalid(fmt::format(
        "outputConfiguration.blobUpload: Secret {} is read only for Capture objects; give the SAS URL", spec.blob_secret_name)));
  }
  if (spec.s3.enabled() && (spec.s3.access_key_id.empty() || spec.s3.secret_access_key.empty())) {
    return unexpected(Error::invalid(
        spec.s3.secret_name.empty()
            ? std::string("s3Upload: no credentials (secretName, or the keys with the spec)")
            : fmt::format("s3Upload: Secret {} is read only for Capture objects; give the keys with the spec",
                          spec.s3.secret_name)));
  }
  auto filter = build_filter(spec);
  if (!filter) return unexpected(filter.error());
  if (!filter->empty()) {
    if (auto st = check_filter(*filter, spec.packet_size); !st) return unexpected(st.error());
  }
  auto dests = m.destinations(spec);
  if (!dests) return unexpected(dests.error());
  struct statvfs vfs{};
  if (::statvfs(m.options.output_root.c_str(), &vfs) == 0) {
    const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    if (free_bytes < lim.min_free_bytes + spec.max_capture_bytes) {
      return unexpected(Error::invalid(fmt::format(
          "not enough free space under {}: {} MB free, the capture needs up to {} MB plus a {} MB reserve",
          m.options.output_root, free_bytes >> 20, spec.max_capture_bytes >> 20, lim.min_free_bytes >> 20)));
    }
  }
  auto targets = resolve_targets(spec, m.options.cache.get(), m.options.node_name);
  if (!targets) return unexpected(targets.error());

  auto run = std::make_shared<Run>();
  std::shared_ptr<Run> replaced;
  {
    std::lock_guard lock(m.mu);
    size_t active = 0;
    for (const auto& [name, r] : m.runs) {
      std::lock_guard rl(r->mu);
      if (!r->status.finished()) ++active;
      if (name == spec.name && !r->status.finished()) {
        return unexpected(Error::invalid(fmt::format("a capture named '{}' is already running on this node", spec.name)));
      }
    }
    if (active >= m.options.max_concurrent) {
      return unexpected(Error::invalid(fmt::format("{} captures already run on this node (the maximum)", active)));
    }
    auto old = m.runs.find(spec.name);
    if (old != m.runs.end()) {
      replaced = old->second;
      m.runs.erase(old);
    }
    m.runs.emplace(spec.name, run);
  }
  // A finished capture of the same name is replaced; its control thread
  // may still be publishing, which takes m.mu.
  if (replaced && replaced->control.joinable()) replaced->control.join();
  auto forget = [&] {
    std::lock_guard lock(m.mu);
    m.runs.erase(spec.name);
  };

  const uint64_t start_ms = now_unix_ms();
  run->filter = *filter;
  run->targets = std::move(*targets);
  run->destinations = std::move(*dests);
  run->status.name = spec.name;
  run->status.node = m.options.node_name;
  run->status.start_unix_ms = start_ms;
  run->status.bundle = bundle_name(spec.name, m.options.node_name, static_cast<int64_t>(start_ms / 1000));
  std::error_code ec;
  run->staging = fs::path(m.options.output_root) / ".staging" / run->status.bundle.substr(0, run->status.bundle.size() - 7);
  fs::remove_all(run->staging, ec);
  fs::create_directories(run->staging, ec);
  if (ec) {
    forget();
    return unexpected(Error::internal(fmt::format("cannot create {}: {}", run->staging.string(), ec.message())));
  }
  for (const auto& d : run->destinations) {
    fs::create_directories(d, ec);
    if (ec) {
      fs::remove_all(run->staging, ec);
      forget();
      return unexpected(Error::invalid(fmt::format("output directory {}: {}", d.string(), ec.message())));
    }
  }
  // A ring (fileCount) keeps the newest packets instead of stopping at the size.
  const bool ring = spec.file_count > 1;
  auto limits = CaptureLimits::create(spec.max_packets, ring ? UINT64_MAX : spec.max_capture_bytes);
  if (!limits) {
    fs::remove_all(run->staging, ec);
    forget();
    return unexpected(limits.error());
  }
  run->limits = std::move(*limits);
  for (const auto& t : run->targets.interfaces) {
    const std::string file = file_for(t.name, spec.format);
    FileRing file_ring;
    if (ring) {
      file_ring.count = spec.file_count;
      file_ring.file_bytes = spec.max_capture_bytes / spec.file_count / run->targets.interfaces.size();
    }
    auto ic = InterfaceCapture::open(t, run->filter, spec.packet_size, spec.format, run->staging.string(), file,
                                     *run->limits, file_ring);
    if (!ic) {
      run->interfaces.clear();
      fs::remove_all(run->staging, ec);
      forget();
      return unexpected(ic.error());
    }
    run->interfaces.push_back(std::move(*ic));
  }
  run->spec = std::move(spec);
  run->status.state = State::kRunning;
  for (auto& ic : run->interfaces) run->threads.emplace_back([p = ic.get()] { p->run(); });
  if (m.captures_started) m.captures_started->add();
  log::info("capture", "started", {{"name", run->spec.name}, {"interfaces", run->interfaces.size()},
                                   {"filter", run->filter}, {"duration_ms", run->spec.duration.count()}});
  CaptureStatus snapshot = run->status;
  run->control = std::thread([this, run] { impl_->control(run); });
  return snapshot;
}

void Manager::Impl::publish(Run& run) {
  CaptureStatus copy;
  {
    std::lock_guard lock(run.mu);
    copy = run.status;
  }
  std::function<void(const CaptureStatus&)> fn;
  {
    std::lock_guard lock(mu);
    fn = on_change;
  }
  if (fn) fn(copy);
}

void Manager::Impl::control(const std::shared_ptr<Run>& run) {
  publish(*run);
  const auto deadline = std::chrono::steady_clock::now() + run->spec.duration;
  {
    // Interface threads stop the limits without the lock: look every 20 ms.
    std::unique_lock lock(run->mu);
    while (!run->limits->stopping() && std::chrono::steady_clock::now() < deadline) {
      run->cv.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
    }
  }
  run->limits->stop(StopReason::kDuration);  // no-op when something else stopped it
  for (auto& t : run->threads) t.join();
  finish(*run);
  publish(*run);
}

void Manager::Impl::finish(Run& run) {
  const StopReason reason = run.limits->reason();
  std::vector<std::string> notes = run.targets.notes;
  std::vector<InterfaceStats> stats;
  uint64_t packets = 0, drops = 0, overwritten = 0;
  for (const auto& ic : run.interfaces) {
    stats.push_back(ic->stats());
    packets += ic->stats().packets + ic->stats().overwritten_packets;
    overwritten += ic->stats().overwritten_packets;
    drops += ic->stats().kernel_dropped;
    if (!ic->stats().error.empty()) notes.push_back(fmt::format("{}: {}", ic->stats().name, ic->stats().error));
  }
  if (packets_written) packets_written->add(packets);
  if (kernel_dropped) kernel_dropped->add(drops);
  if (drops) notes.push_back(fmt::format("the kernel dropped {} packets the capture could not read in time", drops));
  if (overwritten) {
    notes.push_back(fmt::format("fileCount {}: the {} oldest packets were in files dropped for newer ones", run.spec.file_count,
                                overwritten));
  }
  {
    std::lock_guard lock(run.mu);
    run.status.interfaces = stats;
    run.status.stop_reason = to_string(reason);
    run.status.stop_unix_ms = now_unix_ms();
    run.status.state = State::kUploading;
  }
  // A packet file that could not be written fails the capture, whatever
  // stopped it; the bundle still holds what was written, and the note says why.
  std::string failure;
  for (const auto& s : stats) {
    if (!s.error.empty()) failure += (failure.empty() ? "" : "; ") + fmt::format("{}: {}", s.name, s.error);
  }

  // metadata.json: the spec, times, per-interface counts and drops, notes.
  CaptureStatus meta_status;
  {
    std::lock_guard lock(run.mu);
    meta_status = run.status;
  }
  std::string meta = "{\"capture\":";
  meta += status_to_json(meta_status);
  meta += ",\"spec\":" + spec_to_json(without_credentials(run.spec));
  meta += ",\"filter\":";
  json::append_string(meta, run.filter);
  meta += ",\"pods\":[";
  for (size_t i = 0; i < run.targets.pods.size(); ++i) {
    const auto& p = run.targets.pods[i];
    if (i) meta.push_back(',');
    meta += "{\"namespace\":";
    json::append_string(meta, p.namespace_);
    meta += ",\"name\":";
    json::append_string(meta, p.name);
    meta += ",\"ips\":[";
    for (size_t j = 0; j < p.ips.size(); ++j) {
      if (j) meta.push_back(',');
      json::append_string(meta, p.ips[j].to_string());
    }
    meta += "]}";
  }
  meta += "],\"notes\":[";
  for (size_t i = 0; i < notes.size(); ++i) {
    if (i) meta.push_back(',');
    json::append_string(meta, notes[i]);
  }
  meta += "],\"agent\":{\"version\":";
  json::append_string(meta, options.version);
  meta += "}}\n";

  std::vector<BundleEntry> entries;
  for (const auto& s : stats) {
    for (const auto& f : s.files) entries.push_back({f, (run.staging / f).string(), {}});
  }
  entries.push_back({"metadata.json", {}, meta});
  std::string log_text;
  for (const auto& n : notes) log_text += n + "\n";
  log_text += fmt::format("stopped: {}\n", to_string(reason));
  entries.push_back({"capture.log", {}, log_text});
  if (run.spec.include_metadata) {
    for (auto& e : collect_node_state(options.proc_root)) entries.push_back(std::move(e));
    entries.push_back({"agent-config.yaml", {}, options.agent_config_text});
  }

  std::vector<std::string> outputs;
  std::string bundle_path;
  const std::string& name = meta_status.bundle;
  for (const auto& d : run.destinations) {
    const fs::path p = d / name;
    if (auto st = write_bundle(p.string(), entries); !st) {
      failure += (failure.empty() ? "" : "; ") + st.error().message;
      continue;
    }
    if (bundle_path.empty()) bundle_path = p.string();
    outputs.push_back(p.string());
  }
  if (!bundle_path.empty() && run.spec.s3.enabled()) {
    auto r = upload_s3(run.spec.s3, bundle_path, name);
    if (r) outputs.push_back(*r);
    else failure += (failure.empty() ? "" : "; ") + r.error().message;
  }
  if (!bundle_path.empty() && !run.spec.blob_sas_url.empty()) {
    auto r = upload_blob(run.spec.blob_sas_url, bundle_path, name);
    if (r) outputs.push_back(*r);
    else failure += (failure.empty() ? "" : "; ") + r.error().message;
  }
  std::error_code ec;
  fs::remove_all(run.staging, ec);
  State final_state = reason == StopReason::kCancelled ? State::kCancelled : State::kCompleted;
  if (!failure.empty()) final_state = State::kFailed;
  {
    std::lock_guard lock(run.mu);
    run.status.bundle_path = bundle_path;
    run.status.outputs = outputs;
    std::string message;
    for (const auto& n : notes) {
      if (failure.find(n) == std::string::npos) message += (message.empty() ? "" : "; ") + n;
    }
    if (!failure.empty()) message = failure + (message.empty() ? "" : "; " + message);
    run.status.message = message;
    run.status.state = final_state;
  }
  run.cv.notify_all();
  if (captures_finished) captures_finished->with({to_string(final_state)}).add();
  log::info("capture", "finished", {{"name", run.spec.name}, {"state", to_string(final_state)},
                                    {"reason", to_string(reason)}, {"packets", packets}, {"kernel_dropped", drops},
                                    {"bundle", bundle_path}, {"error", failure}});
}

std::vector<CaptureStatus> Manager::list() const {
  std::vector<CaptureStatus> out;
  std::lock_guard lock(impl_->mu);
  for (const auto& [_, r] : impl_->runs) {
    std::lock_guard rl(r->mu);
    out.push_back(r->status);
  }
  return out;
}

Result<CaptureStatus> Manager::get(std::string_view name) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->runs.find(name);
  if (it == impl_->runs.end()) return unexpected(Error::not_found(fmt::format("no capture named '{}' on this node", name)));
  std::lock_guard rl(it->second->mu);
  return it->second->status;
}

Result<CaptureStatus> Manager::cancel(std::string_view name) {
  std::shared_ptr<Run> run;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->runs.find(name);
    if (it == impl_->runs.end()) return unexpected(Error::not_found(fmt::format("no capture named '{}' on this node", name)));
    run = it->second;
  }
  run->limits->stop(StopReason::kCancelled);
  run->cv.notify_all();
  std::lock_guard rl(run->mu);
  return run->status;
}

CaptureStatus Manager::remove(std::string_view name) {
  std::shared_ptr<Run> run;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->runs.find(name);
    if (it == impl_->runs.end()) return {};
    run = it->second;
    impl_->runs.erase(it);
  }
  run->limits->stop(StopReason::kCancelled);
  run->cv.notify_all();
  if (run->control.joinable()) run->control.join();
  std::lock_guard rl(run->mu);
  return run->status;
}

Result<CaptureStatus> Manager::wait(std::string_view name, std::chrono::milliseconds timeout) const {
  std::shared_ptr<Run> run;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->runs.find(name);
    if (it == impl_->runs.end()) return unexpected(Error::not_found(fmt::format("no capture named '{}' on this node", name)));
    run = it->second;
  }
  std::unique_lock lock(run->mu);
  run->cv.wait_for(lock, timeout, [&] { return run->status.finished(); });
  return run->status;
}

}  // namespace retina::capture
