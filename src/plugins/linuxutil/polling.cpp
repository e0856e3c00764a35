#include "plugins/linuxutil/polling.hpp"

#include <spdlog/spdlog.h>

#include "retina/metrics/names.hpp"

namespace retina::linuxutil {

PolledSource::PolledSource(metrics::Registry& registry, std::string_view plugin, std::string_view source)
    : plugin_(plugin), source_(source) {
  auto& family = registry.counter(metrics::names::kPluginSourceErrors,
                                  "Polls in which a plugin's data source could not be read or parsed",
                                  {"plugin", "source"});
  errors_ = &family.with({plugin_, source_});  // created now so it reads 0 before the first failure
}

void PolledSource::failed(const Error& e) {
  errors_->add();
  if (!failing_) spdlog::warn("{}: source {} failed: {}", plugin_, source_, e.message);
  failing_ = true;
}

void PolledSource::succeeded() {
  if (failing_) spdlog::info("{}: source {} recovered", plugin_, source_);
  failing_ = false;
}

}  // namespace retina::linuxutil
