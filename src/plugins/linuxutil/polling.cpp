#include "plugins/linuxutil/polling.hpp"


#include "core/log.hpp"
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
  if (!failing_) log::warn(plugin_, "source failed", {{"source", source_}, {"error", e.message}});
  failing_ = true;
}

void PolledSource::succeeded() {
  if (failing_) log::info(plugin_, "source recovered", {{"source", source_}});
  failing_ = false;
}

}  // namespace retina::linuxutil
