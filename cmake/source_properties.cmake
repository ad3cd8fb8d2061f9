# Per-file compile options, included from the top-level CMakeLists.txt.

# torch_rng.cpp reproduces torch's float arithmetic bit for bit: the compiler must not fuse a
# multiply and an add into an FMA on its own (-march=native enables FMA). The FMAs torch executed
# are written out with std::fma. (The file also says so with a pragma.)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  set_source_files_properties(${PROJECT_SOURCE_DIR}/src/sampling/torch_rng.cpp
    PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
endif()

# Files under assets/ are built into the binary by src/assets/embedded.cpp (.incbin). The hash of
# their contents is part of its compile command, so a changed asset recompiles it (ccache cannot see
# an .incbin), and editing an asset re-runs this configure step.
file(GLOB_RECURSE EASEL_ASSET_FILES ${PROJECT_SOURCE_DIR}/assets/*)
set(EASEL_ASSETS_HASH "")
foreach(asset ${EASEL_ASSET_FILES})
  file(SHA256 ${asset} asset_hash)
  string(APPEND EASEL_ASSETS_HASH ${asset_hash})
endforeach()
string(SHA256 EASEL_ASSETS_HASH "${EASEL_ASSETS_HASH}")
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${EASEL_ASSET_FILES})
set_source_files_properties(${PROJECT_SOURCE_DIR}/src/assets/embedded.cpp PROPERTIES
  COMPILE_DEFINITIONS "EASEL_ASSETS_DIR=\"${PROJECT_SOURCE_DIR}/assets\";EASEL_ASSETS_HASH=\"${EASEL_ASSETS_HASH}\""
  OBJECT_DEPENDS "${EASEL_ASSET_FILES}")
