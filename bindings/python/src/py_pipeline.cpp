// Offline analysis: decode() and decode_many() turn recorded ring-buffer
// records into flows; Pipeline runs them through enrichment, the basic
// metric aggregator and subscriptions, as the engine does with live ones.
#include <fmt/format.h>

#include <mutex>

#include "bindings.hpp"
#include "py_endpoint.hpp"
#include "py_subscription.hpp"
#include "records.hpp"
#include "retina/metrics/aggregator.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"

namespace retina::py {

namespace {

int64_t offset_arg(py::handle v) {
  if (v.is_none()) return boot_to_realtime_offset_ns();
  return v.cast<int64_t>();
}

size_t capacity_arg(long long capacity) {
  if (capacity < 1) raise_invalid(fmt::format("capacity: {} is not a count >= 1", capacity));
  return static_cast<size_t>(capacity);
}

enum class OnError { kRaise, kSkip };
OnError errors_arg(const std::string& s) {
  if (s == "raise") return OnError::kRaise;
  if (s == "skip") return OnError::kSkip;
  raise_invalid(fmt::format("errors: \"{}\" is not raise or skip", s));
}

[[noreturn]] void raise_record(const RecordRef& r, DecodeError e, bool buffer) {
  if (buffer) raise_decode(e, fmt::format("record {} at offset {}: {}", r.index, r.offset, to_string(e)));
  raise_decode(e, fmt::format("records[{}]: {}", r.index, to_string(e)));
}

bool from_buffer(py::handle data) { return PyObject_CheckBuffer(data.ptr()) != 0; }

// A flow whose endpoints are looked up in `cache` (owning references).
OwnedFlow enriched(Flow& f, IpCache* cache) {
  if (!cache || f.ip_version == IpVersion::IP_NOT_USED) return OwnedFlow(f);
  EndpointPtr s = cache->find(f.src);
  EndpointPtr d = cache->find(f.dst);
  f.source = s.get();
  f.destination = d.get();
  return OwnedFlow(f, std::move(s), std::move(d));
}

}  // namespace

// The offline pipeline. Records are decoded here (with a fixed boot-time
// offset, so recordings from another boot get their real times) and
// handed to Pipeline::process_flow(); rejects are counted here and in the
// registry's lost_events_counter{type="decoder"} like the engine's.
class PyPipeline {
 public:
  PyPipeline(std::shared_ptr<IpCache> cache, int64_t offset)
      : registry_(std::make_unique<metrics::Registry>()),
        cache_(cache ? std::move(cache) : std::make_shared<IpCache>()),
        pipeline_(std::make_unique<Pipeline>(cache_, registry_.get())),
        aggregator_(std::make_shared<metrics::BasicAggregator>(*registry_)) {
    pipeline_->add_sink(aggregator_);
    ctx_.boot_to_realtime_ns = offset;
    ctx_.dns_scratch = &dns_;
    lost_ = &registry_->counter(metrics::names::kLostEvents, "Events lost before reaching every consumer",
                                {std::string(metrics::names::kType), std::string(metrics::names::kReason)});
    parsed_ = &registry_->counter(metrics::names::kParsedPackets, "Packets parsed by the packetparser plugin").with({});
  }

  ~PyPipeline() {
    // Flows still queued stay poppable; waiting consumers wake up.
    pipeline_.reset();
  }

  size_t feed(py::handle data, const std::string& plugin, size_t align, OnError on_error) {
    const bool buffer = from_buffer(data);
    RecordSet set(data, align);
    size_t decoded = 0;
    std::optional<std::pair<RecordRef, DecodeError>> failed;
    {
      py::gil_scoped_release release;
      std::lock_guard lock(mu_);
      for (const RecordRef& r : set.records()) {
        ++records_;
        auto res = decode(r.bytes, ctx_, flow_);
        if (!res) {
          reject(res.error(), plugin);
          if (on_error == OnError::kRaise) {
            failed.emplace(r, res.error());
            break;
          }
          continue;
        }
        ++decoded;
        ++decoded_total_;
        if (flow_.origin == FlowSource::kPacketParser) parsed_->add();
        pipeline_->process_flow(flow_);
      }
      if (set.framing_error() && !failed) reject(set.framing_error()->reason, plugin);
      pipeline_->end_batch();
    }
    if (failed) raise_record(failed->first, failed->second, buffer);
    if (const auto& fe = set.framing_error()) raise_decode(fe->reason, fe->message);
    return decoded;
  }

  PySubscription subscribe(std::string name, size_t capacity, FlowFilter filter) {
    return PySubscription{pipeline_->subscribe(std::move(name), capacity, std::move(filter))};
  }

  py::dict stats() const {
    std::lock_guard lock(mu_);
    const PipelineStats ps = pipeline_->stats();
    py::dict d;
    d["records"] = records_;
    d["decoded"] = decoded_total_;
    d["rejected"] = rejects_.to_dict();
    d["enrich_hits"] = ps.enrich_hits;
    d["enrich_misses"] = ps.enrich_misses;
    return d;
  }

  std::string metrics_text() const { return registry_->expose(); }
  PyIpCache cache() const { return PyIpCache{cache_}; }
  int64_t offset() const { return ctx_.boot_to_realtime_ns; }

 private:
  void reject(DecodeError e, const std::string& plugin) {
    rejects_.by_reason[static_cast<size_t>(e)]++;
    lost_->with({metrics::names::kLostDecoder, plugin}).add();
  }

  std::unique_ptr<metrics::Registry> registry_;
  std::shared_ptr<IpCache> cache_;
  std::unique_ptr<Pipeline> pipeline_;
  std::shared_ptr<metrics::BasicAggregator> aggregator_;
  metrics::Family<metrics::Counter>* lost_ = nullptr;
  metrics::Counter* parsed_ = nullptr;

  mutable std::mutex mu_;  // one producer at a time
  DnsInfo dns_;
  DecodeContext ctx_;
  Flow flow_;
  uint64_t records_ = 0, decoded_total_ = 0;
  RejectCounts rejects_;
};

void register_pipeline(py::module_& m) {
  m.def(
      "decode",
      [](py::buffer record, py::object boot_offset_ns) {
        py::buffer_info info = record.request();
        if (!PyBuffer_IsContiguous(info.view(), 'C')) raise_invalid("decode: the buffer is not contiguous");
        DnsInfo dns;
        DecodeContext ctx;
        ctx.boot_to_realtime_ns = offset_arg(boot_offset_ns);
        ctx.dns_scratch = &dns;
        Flow f;
        auto r = decode({static_cast<const std::byte*>(info.ptr), static_cast<size_t>(info.size * info.itemsize)},
                        ctx, f);
        if (!r) raise_decode(r.error(), fmt::format("decode: {}", to_string(r.error())));
        return OwnedFlow(f);
      },
      py::arg("record"), py::kw_only(), py::arg("boot_offset_ns") = py::none(),
      R"doc(Decodes one ring-buffer record into a Flow; raises retina.DecodeError.
Record times are CLOCK_BOOTTIME; boot_offset_ns is added to make them unix
time (default: this machine's current offset, right for records of this boot).)doc");

  m.def(
      "_decode_batch",
      [](py::handle data, py::object boot_offset_ns, py::object cache, size_t align, const std::string& errors) {
        const OnError on_error = errors_arg(errors);
        const bool buffer = from_buffer(data);
        RecordSet set(data, align);
        std::shared_ptr<IpCache> ipc;
        if (!cache.is_none()) {
          if (!py::isinstance<PyIpCache>(cache)) raise_invalid("cache: expected a retina.IpCache");
          ipc = cache.cast<const PyIpCache&>().cache;
        }
        const int64_t offset = offset_arg(boot_offset_ns);
        FlowBatch batch;
        RejectCounts rejects;
        std::optional<std::pair<RecordRef, DecodeError>> failed;
        {
          py::gil_scoped_release release;
          DnsInfo dns;
          DecodeContext ctx;
          ctx.boot_to_realtime_ns = offset;
          ctx.dns_scratch = &dns;
          batch.flows.reserve(set.records().size());
          Flow f;
          for (const RecordRef& r : set.records()) {
            auto res = decode(r.bytes, ctx, f);
            if (!res) {
              rejects.by_reason[static_cast<size_t>(res.error())]++;
              if (on_error == OnError::kRaise) {
                failed.emplace(r, res.error());
                break;
              }
              continue;
            }
            batch.flows.push_back(enriched(f, ipc.get()));
          }
        }
        if (failed) raise_record(failed->first, failed->second, buffer);
        if (const auto& fe = set.framing_error()) raise_decode(fe->reason, fe->message);
        return py::make_tuple(std::move(batch), rejects.to_dict());
      },
      py::arg("data"), py::arg("boot_offset_ns") = py::none(), py::arg("cache") = py::none(), py::arg("align") = 1,
      py::arg("errors") = "raise");

  py::class_<PyPipeline>(m, "Pipeline", R"doc(
The engine's flow path without the kernel: feed recorded ring-buffer
records, get enriched flows from subscriptions and metrics from the basic
aggregator. Use retina.Pipeline, which wraps this.
)doc")
      .def(py::init([](py::object cache, py::object boot_offset_ns) {
             std::shared_ptr<IpCache> ipc;
             if (!cache.is_none()) {
               if (!py::isinstance<PyIpCache>(cache)) raise_invalid("cache: expected a retina.IpCache");
               ipc = cache.cast<const PyIpCache&>().cache;
             }
             return std::make_unique<PyPipeline>(std::move(ipc), offset_arg(boot_offset_ns));
           }),
           py::arg("cache") = py::none(), py::arg("boot_offset_ns") = py::none())
      .def(
          "feed",
          [](PyPipeline& p, py::handle data, const std::string& plugin, size_t align, const std::string& errors) {
            return p.feed(data, plugin, align, errors_arg(errors));
          },
          py::arg("data"), py::arg("plugin") = "packetparser", py::arg("align") = 1, py::arg("errors") = "raise")
      .def(
          "subscribe",
          [](PyPipeline& p, std::string name, long long capacity, py::object filter) {
            return std::make_shared<PySubscription>(p.subscribe(std::move(name), capacity_arg(capacity), to_filter(filter)));
          },
          py::arg("name"), py::arg("capacity") = 1 << 16, py::arg("filter") = py::none())
      .def("stats", &PyPipeline::stats)
      .def("metrics_text", [](const PyPipeline& p) {
        py::gil_scoped_release release;
        return p.metrics_text();
      })
      .def_property_readonly("cache", &PyPipeline::cache)
      .def_property_readonly("boot_offset_ns", &PyPipeline::offset);
}

}  // namespace retina::py
