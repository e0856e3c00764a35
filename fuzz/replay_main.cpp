// Runs a libFuzzer target over every file of a corpus directory (and over a
// few generated inputs), for builds without libFuzzer. A crash fails ctest.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  size_t files = 0;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path dir(argv[i]);
    if (!std::filesystem::exists(dir)) continue;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::vector<uint8_t> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      LLVMFuzzerTestOneInput(buf.data(), buf.size());
      ++files;
    }
  }
  // Random and truncated inputs, deterministic seed.
  std::mt19937 rng(12345);
  std::vector<uint8_t> buf;
  for (int n = 0; n < 20000; ++n) {
    buf.resize(rng() % 1024);
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    LLVMFuzzerTestOneInput(buf.data(), buf.size());
  }
  LLVMFuzzerTestOneInput(nullptr, 0);
  std::printf("replayed %zu corpus files and 20000 random inputs\n", files);
  return 0;
}
