# The engine's layers, each its own static library that links only the layers below it:
#
#   core < backends < ops < io < imaging < text < models < sampling < pipelines < server < cli
#   (assets: embedded files, beside core; text and server read them)
#
# A call into a higher layer is a link error. An #include of a higher layer's header is a compile
# error: a layer does not see `src/` but a folder of its own that holds one link, `<layer>` ->
# `src/<layer>`, and it exports that folder to whoever links it. So a file of `models` finds
# "core/tensor.h" (models links ops, which links core) and not "server/job.h". The `layer_*` tests
# compile one forbidden include per layer and pass when the compiler refuses it.

set(EASEL_LAYER_ROOT ${PROJECT_BINARY_DIR}/layers)

# easel_layer(<name> [DEPS <layers below it that it uses>] [PUBLIC_LIBS ...] [PRIVATE_LIBS ...])
# makes the library easel_<name> from src/<name>/**.cpp.
function(easel_layer name)
  cmake_parse_arguments(L "" "" "DEPS;PUBLIC_LIBS;PRIVATE_LIBS" ${ARGN})
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${name}/*.cpp)
  file(MAKE_DIRECTORY ${EASEL_LAYER_ROOT}/${name})
  file(CREATE_LINK ${PROJECT_SOURCE_DIR}/src/${name} ${EASEL_LAYER_ROOT}/${name}/${name} SYMBOLIC)
  add_library(easel_${name} STATIC ${sources})
  target_include_directories(easel_${name} PUBLIC ${EASEL_LAYER_ROOT}/${name})
  list(TRANSFORM L_DEPS PREPEND easel_)
  target_link_libraries(easel_${name} PUBLIC ${L_DEPS} ${L_PUBLIC_LIBS} PRIVATE ${L_PRIVATE_LIBS})
endfunction()

easel_layer(core PUBLIC_LIBS Threads::Threads)
easel_layer(assets)
easel_layer(backends DEPS core PRIVATE_LIBS hwy ${DNNL_LIBRARY} $<LINK_ONLY:OpenMP::OpenMP_CXX>)
easel_layer(ops DEPS backends)
easel_layer(io DEPS core PUBLIC_LIBS nlohmann_json::nlohmann_json
            PRIVATE_LIBS PNG::PNG JPEG::JPEG PkgConfig::WEBP ZLIB::ZLIB)
easel_layer(imaging DEPS io)
easel_layer(text DEPS core assets PRIVATE_LIBS nlohmann_json::nlohmann_json PkgConfig::PCRE2 PkgConfig::UTF8PROC ZLIB::ZLIB)
easel_layer(models DEPS ops io)
easel_layer(sampling DEPS models)
easel_layer(pipelines DEPS sampling imaging text)
easel_layer(server DEPS pipelines assets PRIVATE_LIBS PkgConfig::SQLITE3)

# Everything but the CLI, for the tests and benchmarks (which may reach into any layer).
add_library(easel_engine INTERFACE)
target_link_libraries(easel_engine INTERFACE easel_server)

# One forbidden include per layer: the header of the next layer up (a file that exists, so only the
# layer's view of src/ can make the compile fail). Built only by the tests, expected to fail.
set(EASEL_LAYER_PROBES
  "core:backends/backend.h" "backends:ops/ops.h" "ops:io/image.h" "io:imaging/pil_ops.h"
  "imaging:text/regex.h" "text:models/weights.h" "models:sampling/denoiser.h"
  "sampling:pipelines/generation_params.h" "pipelines:server/job.h" "server:cli/commands.h")
foreach(probe ${EASEL_LAYER_PROBES})
  string(REPLACE ":" ";" parts ${probe})
  list(GET parts 0 layer)
  list(GET parts 1 header)
  if(NOT EXISTS ${PROJECT_SOURCE_DIR}/src/${header})
    message(FATAL_ERROR "layer probe for ${layer}: src/${header} is gone; name another header of that layer")
  endif()
  set(probe_source ${PROJECT_BINARY_DIR}/layer_probes/${layer}.cpp)
  file(CONFIGURE OUTPUT ${probe_source} CONTENT "#include \"${header}\"  // must not compile in ${layer}\n")
  add_library(layer_probe_${layer} OBJECT EXCLUDE_FROM_ALL ${probe_source})
  target_link_libraries(layer_probe_${layer} PRIVATE easel_${layer})
endforeach()
