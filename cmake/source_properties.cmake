# Per-file compile options, included from the top-level CMakeLists.txt.

# torch_rng.cpp reproduces torch's float arithmetic bit for bit: the compiler must not fuse a
# multiply and an add into an FMA on its own (-march=native enables FMA). The FMAs torch executed
# are written out with std::fma. (The file also says so with a pragma.)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  set_source_files_properties(${PROJECT_SOURCE_DIR}/src/sampling/torch_rng.cpp
    PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
endif()
