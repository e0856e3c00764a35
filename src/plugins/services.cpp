#include "plugins/services.hpp"

#include "core/log.hpp"
#include "loader/interface_watcher.hpp"

namespace retina {

PluginServices::PluginServices(Config config) : PluginServices(std::move(config), Options{}) {}

PluginServices::PluginServices(Config config, Options options)
    : config_(std::move(config)), options_(std::move(options)) {
  if (!options_.features) options_.features = make_kernel_feature_detector();
  if (!options_.cache) options_.cache = std::make_shared<IpCache>();
}

PluginServices::~PluginServices() { stop(); }

FeatureDetector& PluginServices::features() { return *options_.features; }

Result<InterfaceWatcher*> PluginServices::interfaces() { return interfaces(config_); }

Result<InterfaceWatcher*> PluginServices::interfaces(const Config& config) {
  std::lock_guard lock(mu_);
  if (interfaces_) return interfaces_.get();
  auto w = InterfaceWatcher::create(config);
  if (!w) return unexpected(w.error().wrap("interface watcher"));
  if (auto st = (*w)->start(); !st) return unexpected(st.error().wrap("interface watcher"));
  interfaces_ = std::move(*w);
  log::info("plugins", "interface watcher started");
  return interfaces_.get();
}

void PluginServices::stop() noexcept {
  std::lock_guard lock(mu_);
  if (interfaces_) interfaces_->stop();
}

Status PluginServices::provide(const PluginNeeds& needs, PluginContext& ctx) {
  if (needs.kubernetes && !options_.kubernetes)
    return unexpected(Error::unsupported("needs the Kubernetes watcher (enableKubernetes or a kubeconfig)"));
  if (needs.features && !ctx.features) ctx.features = options_.features.get();
  if (needs.ip_cache && !ctx.cache) ctx.cache = options_.cache.get();
  if (needs.interfaces && !ctx.interfaces) {
    auto w = interfaces(ctx.config ? *ctx.config : config_);
    if (!w) return unexpected(w.error());
    ctx.interfaces = *w;
  }
  return ok();
}

}  // namespace retina
