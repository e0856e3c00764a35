#include "k8s/metrics_config_tracker.hpp"

#include <exception>

#include <fmt/format.h>

#include "core/log.hpp"

namespace retina::k8s {

void MetricsConfigTracker::replace(std::vector<MetricsConfigurationInfo> items) {
  std::lock_guard l(mu_);
  objects_.clear();
  for (auto& o : items) {
    std::string name = o.name;
    objects_.insert_or_assign(std::move(name), std::move(o));
  }
  reconcile();
}

void MetricsConfigTracker::apply(EventType type, MetricsConfigurationInfo obj) {
  std::lock_guard l(mu_);
  if (type == EventType::kDeleted) {
    objects_.erase(obj.name);
  } else {
    std::string name = obj.name;
    objects_.insert_or_assign(std::move(name), std::move(obj));
  }
  reconcile();
}

size_t MetricsConfigTracker::count() const {
  std::lock_guard l(mu_);
  return objects_.size();
}

void MetricsConfigTracker::report(const MetricsConfigurationInfo& obj, const Error& err, bool invalid) {
  auto [it, inserted] = reported_.try_emplace(obj.name, obj.resource_version);
  if (!inserted) {
    if (it->second == obj.resource_version) return;  // this version was reported already
    it->second = obj.resource_version;
  }
  if (invalid) metrics_.error(ErrorReason::kInvalidObject);
  log::warn("k8s", "MetricsConfiguration not applied",
            {{"name", obj.name}, {"resourceVersion", obj.resource_version}, {"error", err.message}});
  if (!on_error_) return;
  try {
    on_error_(obj.name, err);
  } catch (const std::exception& e) {
    log::error("k8s", "MetricsConfiguration error callback threw", {{"error", e.what()}});
  } catch (...) {
    log::error("k8s", "MetricsConfiguration error callback threw");
  }
}

void MetricsConfigTracker::reconcile() {
  for (auto it = reported_.begin(); it != reported_.end();) {
    it = objects_.contains(it->first) ? std::next(it) : reported_.erase(it);
  }
  MetricsConfigurationSpec next;  // empty name: no MetricsConfiguration exists
  if (!objects_.empty()) {
    const MetricsConfigurationInfo* active = nullptr;
    for (const auto& [name, o] : objects_) {
      if (!active || o.creation_timestamp < active->creation_timestamp) active = &o;  // map order breaks ties by name
    }
    for (const auto& [name, o] : objects_) {
      if (&o == active) continue;
      report(o,
             Error::invalid(fmt::format("ignored: only one MetricsConfiguration is used and \"{}\" (the oldest) is "
                                        "in force",
                                        active->name)),
             false);
    }
    if (!active->spec) {
      report(*active, active->spec.error(), true);
      return;  // the previous configuration stays in force
    }
    reported_.erase(active->name);
    next = *active->spec;
  } else if (!delivered_) {
    return;  // nothing was ever delivered: nothing to withdraw
  }
  if (delivered_ && *delivered_ == next) return;
  delivered_ = next;
  log::info("k8s", "MetricsConfiguration in force",
            {{"name", next.name.empty() ? std::string_view("(none)") : std::string_view(next.name)},
             {"contextOptions", next.context_options.size()}});
  if (!on_spec_) return;
  try {
    on_spec_(next);
  } catch (const std::exception& e) {
    log::error("k8s", "MetricsConfiguration callback threw", {{"error", e.what()}});
  } catch (...) {
    log::error("k8s", "MetricsConfiguration callback threw");
  }
}

}  // namespace retina::k8s
