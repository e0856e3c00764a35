// EndpointsFileWatcher against real files in a private temporary directory.
// inotify queues an event before the close()/rename() that caused it
// returns, so poll(0ms) right after a file operation sees it: no sleeps.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>

#include "cache/endpoints_file.hpp"

using namespace retina;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// A fresh directory, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("retina-epfile-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// Writes a temporary file next to `p` and renames it over `p`, as editors do.
void replace_file(const fs::path& p, const std::string& text) {
  fs::path tmp = p;
  tmp += ".tmp~";
  write_file(tmp, text);
  fs::rename(tmp, p);
}

std::string one(const char* name, const char* ip) {
  return std::string("endpoints:\n  - {name: ") + name + ", ips: [" + ip + "]}\n";
}

std::string who(const IpCache& c, const char* addr) {
  auto g = c.read();
  const Endpoint* ep = g.lookup(*IpAddr::parse(addr));
  return ep ? ep->name : std::string();
}

}  // namespace

TEST_CASE("EndpointsFileWatcher loads the file and follows in-place writes and renames", "[endpoints_file]") {
  TempDir dir;
  const fs::path file = dir.path / "endpoints.yaml";
  write_file(file, one("a", "10.0.0.1"));
  auto cache = std::make_shared<IpCache>();
  int callbacks = 0;
  EndpointsFileWatcher::Options opts;
  opts.on_load = [&](const EndpointsFileStatus&) { ++callbacks; };
  auto w = EndpointsFileWatcher::create(file.string(), cache, opts);
  REQUIRE(w);
  auto& watcher = **w;
  CHECK(who(*cache, "10.0.0.1") == "a");
  auto st = watcher.status();
  CHECK(st.ok);
  CHECK(st.loaded);
  CHECK(st.reloads == 1);
  CHECK(st.endpoints == 1);
  CHECK(st.path == file.string());
  CHECK(callbacks == 1);

  // In-place rewrite.
  write_file(file, one("b", "10.0.0.2"));
  REQUIRE(watcher.poll(0ms));
  CHECK(who(*cache, "10.0.0.1").empty());
  CHECK(who(*cache, "10.0.0.2") == "b");
  CHECK(watcher.status().reloads == 2);

  // Editor-style replace by rename.
  replace_file(file, one("c", "10.0.0.3"));
  REQUIRE(watcher.poll(0ms));
  CHECK(who(*cache, "10.0.0.2").empty());
  CHECK(who(*cache, "10.0.0.3") == "c");
  CHECK(watcher.status().reloads == 3);

  // Unrelated files in the directory and same-content rewrites change nothing.
  write_file(dir.path / "other.yaml", one("x", "10.0.0.9"));
  write_file(file, one("c", "10.0.0.3"));
  REQUIRE(watcher.poll(0ms));
  CHECK(watcher.status().reloads == 3);
  CHECK(who(*cache, "10.0.0.9").empty());

  // Nothing pending: poll returns.
  REQUIRE(watcher.poll(0ms));
  CHECK(cache->stats().endpoints == 1);
}

TEST_CASE("EndpointsFileWatcher keeps the last good content on a bad file", "[endpoints_file]") {
  TempDir dir;
  const fs::path file = dir.path / "endpoints.json";
  write_file(file, R"({"endpoints": [{"name": "a", "ips": ["10.0.0.1"]}]})");
  auto cache = std::make_shared<IpCache>();
  EndpointsFileStatus last;
  EndpointsFileWatcher::Options opts;
  opts.on_load = [&](const EndpointsFileStatus& s) { last = s; };
  auto w = EndpointsFileWatcher::create(file.string(), cache, opts);
  REQUIRE(w);
  auto& watcher = **w;
  CHECK(who(*cache, "10.0.0.1") == "a");

  write_file(file, R"({"endpoints": [{"name": "a", "ips": ["10.0.0.300"]}]})");
  REQUIRE(watcher.poll(0ms));
  CHECK(who(*cache, "10.0.0.1") == "a");  // kept
  CHECK_FALSE(last.ok);
  CHECK(last.failures == 1);
  CHECK(last.reloads == 1);
  CHECK(last.loaded);
  CHECK(last.last_error.find(file.string() + ": endpoints[0].ips[0]: \"10.0.0.300\" is not an IPv4 or IPv6 address") ==
        0);
  CHECK(watcher.status().last_error == last.last_error);

  // Deleting the file keeps the content too, and reports nothing by itself.
  fs::remove(file);
  REQUIRE(watcher.poll(0ms));
  CHECK(who(*cache, "10.0.0.1") == "a");
  // An explicit reload of a missing file is a failure that keeps the content.
  watcher.reload();
  CHECK(who(*cache, "10.0.0.1") == "a");
  CHECK(watcher.status().failures == 2);
  CHECK(watcher.status().last_error.find("No such file or directory") != std::string::npos);

  // A good file again: applied, status clear.
  write_file(file, R"({"endpoints": [{"name": "b", "ips": ["10.0.0.2"]}]})");
  REQUIRE(watcher.poll(0ms));
  CHECK(who(*cache, "10.0.0.1").empty());
  CHECK(who(*cache, "10.0.0.2") == "b");
  CHECK(last.ok);
  CHECK(last.last_error.empty());
  CHECK(last.reloads == 2);
  CHECK(last.failures == 2);
}

TEST_CASE("EndpointsFileWatcher waits for a file that appears later", "[endpoints_file]") {
  TempDir dir;
  const fs::path file = dir.path / "endpoints.yaml";
  auto cache = std::make_shared<IpCache>();
  auto w = EndpointsFileWatcher::create(file.string(), cache);
  REQUIRE(w);
  auto& watcher = **w;
  auto st = watcher.status();
  CHECK_FALSE(st.ok);
  CHECK_FALSE(st.loaded);
  CHECK(st.last_error.find("No such file or directory") != std::string::npos);

  replace_file(file, one("late", "fd00::1"));
  REQUIRE(watcher.poll(0ms));
  CHECK(who(*cache, "fd00::1") == "late");
  CHECK(watcher.status().ok);
}

TEST_CASE("EndpointsFileWatcher waits for a directory that appears later", "[endpoints_file]") {
  TempDir dir;
  const fs::path sub = dir.path / "later";
  const fs::path file = sub / "endpoints.yaml";
  auto cache = std::make_shared<IpCache>();
  auto w = EndpointsFileWatcher::create(file.string(), cache);
  REQUIRE(w);
  auto& watcher = **w;
  CHECK_FALSE(watcher.status().ok);
  fs::create_directories(sub);
  write_file(file, one("a", "10.0.0.1"));
  REQUIRE(watcher.poll(0ms));  // adds the watch and loads what is there
  CHECK(who(*cache, "10.0.0.1") == "a");
  write_file(file, one("b", "10.0.0.2"));
  REQUIRE(watcher.poll(0ms));
  CHECK(who(*cache, "10.0.0.2") == "b");

  // The directory is replaced as a whole.
  fs::remove_all(sub);
  REQUIRE(watcher.poll(0ms));
  CHECK(who(*cache, "10.0.0.2") == "b");
  fs::create_directories(sub);
  write_file(file, one("c", "10.0.0.3"));
  REQUIRE(watcher.poll(0ms));
  CHECK(who(*cache, "10.0.0.3") == "c");
}

TEST_CASE("EndpointsFileWatcher follows a ConfigMap-style ..data symlink swap", "[endpoints_file]") {
  TempDir dir;
  // <dir>/endpoints.yaml -> ..data/endpoints.yaml, ..data -> ..v1
  fs::create_directories(dir.path / "..v1");
  write_file(dir.path / "..v1" / "endpoints.yaml", one("v1", "10.0.0.1"));
  fs::create_directory_symlink("..v1", dir.path / "..data");
  fs::create_symlink("..data/endpoints.yaml", dir.path / "endpoints.yaml");
  auto cache = std::make_shared<IpCache>();
  auto w = EndpointsFileWatcher::create((dir.path / "endpoints.yaml").string(), cache);
  REQUIRE(w);
  auto& watcher = **w;
  CHECK(who(*cache, "10.0.0.1") == "v1");

  // The kubelet writes ..v2, points ..data_tmp at it and renames it to ..data.
  fs::create_directories(dir.path / "..v2");
  write_file(dir.path / "..v2" / "endpoints.yaml", one("v2", "10.0.0.2"));
  fs::create_directory_symlink("..v2", dir.path / "..data_tmp");
  fs::rename(dir.path / "..data_tmp", dir.path / "..data");
  REQUIRE(watcher.poll(0ms));
  CHECK(who(*cache, "10.0.0.1").empty());
  CHECK(who(*cache, "10.0.0.2") == "v2");
}

TEST_CASE("EndpointsFileWatcher applies removals with the configured grace", "[endpoints_file]") {
  TempDir dir;
  const fs::path file = dir.path / "endpoints.yaml";
  write_file(file, "endpoints:\n  - {name: a, ips: [10.0.0.1]}\n  - {name: b, ips: [10.0.0.2]}\n");
  auto cache = std::make_shared<IpCache>();
  cache->upsert(std::make_shared<Endpoint>(Endpoint{.kind = EndpointKind::kPod, .namespace_ = "k8s", .name = "api",
                                                    .ips = {*IpAddr::parse("10.0.1.1")}}),
                EndpointSource::kKubernetes);
  EndpointsFileWatcher::Options opts;
  opts.grace = std::chrono::minutes(5);
  auto w = EndpointsFileWatcher::create(file.string(), cache, opts);
  REQUIRE(w);
  replace_file(file, "endpoints:\n  - {name: a, ips: [10.0.0.1]}\n");
  REQUIRE((*w)->poll(0ms));
  CHECK(who(*cache, "10.0.0.2") == "b");  // lingering
  CHECK(cache->stats().lingering == 1);
  cache->expire(std::chrono::steady_clock::now() + std::chrono::minutes(6));
  CHECK(who(*cache, "10.0.0.2").empty());
  CHECK(who(*cache, "10.0.1.1") == "api");  // other sources untouched
}

TEST_CASE("EndpointsFileWatcher background thread applies changes", "[endpoints_file]") {
  TempDir dir;
  const fs::path file = dir.path / "endpoints.yaml";
  auto cache = std::make_shared<IpCache>();
  std::mutex mu;
  std::condition_variable cv;
  uint64_t reloads = 0;
  EndpointsFileWatcher::Options opts;
  opts.on_load = [&](const EndpointsFileStatus& s) {
    std::lock_guard l(mu);
    reloads = s.reloads;
    cv.notify_all();
  };
  auto w = EndpointsFileWatcher::create(file.string(), cache, opts);
  REQUIRE(w);
  REQUIRE((*w)->start());
  CHECK_FALSE((*w)->start());  // once only
  replace_file(file, one("a", "10.0.0.1"));
  {
    std::unique_lock l(mu);
    // Generous bound: a hang fails the test instead of blocking ctest.
    REQUIRE(cv.wait_for(l, 30s, [&] { return reloads >= 1; }));
  }
  CHECK(who(*cache, "10.0.0.1") == "a");
  (*w)->stop();
  (*w)->stop();  // idempotent
}

TEST_CASE("EndpointsFileWatcher rejects unusable arguments", "[endpoints_file]") {
  auto cache = std::make_shared<IpCache>();
  CHECK_FALSE(EndpointsFileWatcher::create("", cache));
  CHECK_FALSE(EndpointsFileWatcher::create("/tmp/x.yaml", nullptr));
  auto d = EndpointsFileWatcher::create("/tmp/", cache);
  REQUIRE_FALSE(d);
  CHECK(d.error().message.find("names a directory") != std::string::npos);
}
