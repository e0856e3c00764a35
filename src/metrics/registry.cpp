#include "retina/metrics/registry.hpp"

#include <algorithm>
#include <utility>

namespace retina::metrics {

void Gauge::add(double d) noexcept {
  double cur = v_.load(std::memory_order_relaxed);
  while (!v_.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
  }
}

template <class M>
M& Family<M>::with(std::span<const std::string_view> values) {
  // Label values joined by a byte that cannot appear in valid UTF-8 text.
  std::string key;
  for (size_t i = 0; i < label_names_.size(); ++i) {
    if (i) key += '\xff';
    if (i < values.size()) key += values[i];
  }
  std::lock_guard lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) return it->second->metric;
  Series& s = series_.emplace_back();
  s.values.reserve(label_names_.size());
  for (size_t i = 0; i < label_names_.size(); ++i)
    s.values.emplace_back(i < values.size() ? values[i] : std::string_view{});
  index_.emplace(std::move(key), &s);
  return s.metric;
}

template <class M>
void Family<M>::write(TextWriter& w, MetricType type) const {
  w.family(name_, help_, type);
  std::lock_guard lock(mu_);
  Label labels[16];
  const size_t n = std::min<size_t>(label_names_.size(), 16);
  for (const Series& s : series_) {
    for (size_t i = 0; i < n; ++i) labels[i] = Label{label_names_[i], s.values[i]};
    if constexpr (std::is_same_v<M, Counter>) {
      w.sample(name_, std::span<const Label>(labels, n), s.metric.value());
    } else {
      w.sample(name_, std::span<const Label>(labels, n), s.metric.value());
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;

struct Registry::Impl {
  struct Entry {
    MetricType type;
    std::unique_ptr<Family<Counter>> counter;
    std::unique_ptr<Family<Gauge>> gauge;
  };
  mutable std::mutex mu;  // families
  std::vector<Entry> families;
  absl::flat_hash_map<std::string, size_t> by_name;

  mutable std::mutex collectors_mu;
  std::vector<std::pair<uint64_t, std::shared_ptr<Collector>>> collectors;
  uint64_t next_collector_id = 1;
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

Family<Counter>& Registry::counter(std::string_view name, std::string_view help,
                                   std::vector<std::string> label_names) {
  std::lock_guard lock(impl_->mu);
  if (auto it = impl_->by_name.find(absl::string_view(name.data(), name.size())); it != impl_->by_name.end()) {
    auto& e = impl_->families[it->second];
    if (e.counter) return *e.counter;
  }
  Impl::Entry e{MetricType::kCounter,
                std::make_unique<Family<Counter>>(std::string(name), std::string(help), std::move(label_names)),
                nullptr};
  auto& ref = *e.counter;
  impl_->by_name.emplace(std::string(name), impl_->families.size());
  impl_->families.push_back(std::move(e));
  return ref;
}

Family<Gauge>& Registry::gauge(std::string_view name, std::string_view help,
                               std::vector<std::string> label_names) {
  std::lock_guard lock(impl_->mu);
  if (auto it = impl_->by_name.find(absl::string_view(name.data(), name.size())); it != impl_->by_name.end()) {
    auto& e = impl_->families[it->second];
    if (e.gauge) return *e.gauge;
  }
  Impl::Entry e{MetricType::kGauge, nullptr,
                std::make_unique<Family<Gauge>>(std::string(name), std::string(help), std::move(label_names))};
  auto& ref = *e.gauge;
  impl_->by_name.emplace(std::string(name), impl_->families.size());
  impl_->families.push_back(std::move(e));
  return ref;
}

uint64_t Registry::add_collector(std::shared_ptr<Collector> c) {
  std::lock_guard lock(impl_->collectors_mu);
  const uint64_t id = impl_->next_collector_id++;
  impl_->collectors.emplace_back(id, std::move(c));
  return id;
}

CollectorHandle Registry::add(std::shared_ptr<Collector> c) { return CollectorHandle(this, add_collector(std::move(c))); }

void CollectorHandle::reset() noexcept {
  if (registry_) registry_->remove_collector(id_);
  registry_ = nullptr;
}

void Registry::remove_collector(uint64_t id) {
  std::lock_guard lock(impl_->collectors_mu);
  std::erase_if(impl_->collectors, [id](const auto& p) { return p.first == id; });
}

void Registry::expose(std::string& out) const {
  std::vector<std::shared_ptr<Collector>> collectors;
  {
    std::lock_guard lock(impl_->collectors_mu);
    collectors.reserve(impl_->collectors.size());
    for (auto& [id, c] : impl_->collectors) collectors.push_back(c);
  }
  for (auto& c : collectors) c->refresh();
  TextWriter w(out);
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& e : impl_->families) {
      if (e.counter) e.counter->write(w, MetricType::kCounter);
      else e.gauge->write(w, MetricType::kGauge);
    }
  }
  for (auto& c : collectors) c->collect(w);
}

}  // namespace retina::metrics
