// The one main() of retina_bench; benchmarks live in bench_*.cpp.
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
