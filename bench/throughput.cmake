# `kvcache-bench throughput`: Get/Put throughput and latency of kvcache against Redis,
# memcached and a raw TCP ceiling, Lookup latency, and RAM-tier index cost per block.
# Included from bench/CMakeLists.txt; kvcache-bench links kvcache_bench_throughput.
#
# Needs (Debian 12): libhiredis-dev, libmemcached-dev (found with pkg-config).

if(NOT TARGET kvcache_bench_throughput)
  pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
  pkg_check_modules(LIBMEMCACHED REQUIRED IMPORTED_TARGET libmemcached)

  add_library(kvcache_bench_throughput STATIC
    ${CMAKE_CURRENT_LIST_DIR}/throughput.cc
    ${CMAKE_CURRENT_LIST_DIR}/throughput_targets.cc
    ${CMAKE_CURRENT_LIST_DIR}/throughput_index.cc)
  target_compile_options(kvcache_bench_throughput PRIVATE -O2)
  target_link_libraries(kvcache_bench_throughput
    PUBLIC kvcache_bench_flags kvcache_tls
    PRIVATE kvcache_tls_client_flags kvcache_progress kvcache_bench_latency kvcache_client kvcache_server kvcache_cachestore kvcache_common
            PkgConfig::HIREDIS PkgConfig::LIBMEMCACHED
            absl::status absl::statusor absl::strings absl::str_format absl::time
            absl::synchronization absl::flags nlohmann_json::nlohmann_json Threads::Threads)
endif()
