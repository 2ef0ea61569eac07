# End-to-end checks of `kvcache-bench throughput` through the real binaries (correctness of
# the harness only: exit status, JSON fields, no errors; never timings). Included from
# tests/bench/CMakeLists.txt (or tests/CMakeLists.txt) with
#   include(${CMAKE_SOURCE_DIR}/tests/bench/throughput.cmake)
kvcache_test(throughput_bench_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/throughput_bench_test.cc
  LIBS nlohmann_json::nlohmann_json)
add_dependencies(throughput_bench_test kvcache-bench kvcache-server)
