# The server in the wheel: spanprof/bin/spanprof-server, linked statically (server/CMakeLists.txt,
# SPANPROF_SERVER_STATIC) so the wheel needs nothing but glibc.
#   SPANPROF_SERVER=AUTO (default): built when its build dependencies are present, else skipped
#     with a warning (the sdist then still gives the agent and the CLI);
#   ON: required; OFF: skipped;
#   SPANPROF_SERVER_BINARY=<path>: package that binary instead of building it (CI packages the
#     static build/server/spanprof-server that its tests already ran against).
# Debug symbols are two thirds of the binary; the wheel carries it stripped.
function(spanprof_strip_installed_server)
  if(CMAKE_STRIP)
    install(CODE "execute_process(COMMAND \"${CMAKE_STRIP}\"
      \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/spanprof/bin/spanprof-server\" COMMAND_ERROR_IS_FATAL ANY)")
  endif()
endfunction()

set(SPANPROF_SERVER AUTO CACHE STRING "build the server into the wheel: AUTO, ON or OFF")
set(SPANPROF_SERVER_BINARY "" CACHE FILEPATH "prebuilt static spanprof-server to package")

if(SPANPROF_SERVER_BINARY)
  if(NOT EXISTS "${SPANPROF_SERVER_BINARY}")
    message(FATAL_ERROR "SPANPROF_SERVER_BINARY=${SPANPROF_SERVER_BINARY} does not exist")
  endif()
  install(PROGRAMS "${SPANPROF_SERVER_BINARY}" DESTINATION spanprof/bin RENAME spanprof-server)
  spanprof_strip_installed_server()
  return()
endif()
if(SPANPROF_SERVER STREQUAL "OFF")
  return()
endif()

# Headers and protoc only: a library found here would be cached as the shared one, and the
# server's own find_package calls must see the static archives.
set(_missing)
find_program(SPANPROF_PROTOC protoc)
if(NOT SPANPROF_PROTOC)
  list(APPEND _missing "protoc (protobuf-compiler)")
endif()
foreach(_h "google/protobuf/message.h;libprotobuf-dev" "sqlite3.h;libsqlite3-dev"
           "zlib.h;zlib1g-dev" "libdeflate.h;libdeflate-dev" "boost/beast.hpp;libboost-dev"
           "nlohmann/json.hpp;nlohmann-json3-dev" "CLI/CLI.hpp;libcli11-dev"
           "jemalloc/jemalloc.h;libjemalloc-dev")
  list(GET _h 0 _header)
  list(GET _h 1 _package)
  string(MAKE_C_IDENTIFIER "SPANPROF_HAVE_${_header}" _var)
  find_path(${_var} ${_header})
  if(NOT ${_var})
    list(APPEND _missing "${_header} (${_package})")
  endif()
endforeach()
if(_missing)
  string(REPLACE ";" ", " _missing "${_missing}")
  if(SPANPROF_SERVER STREQUAL "ON")
    message(FATAL_ERROR "spanprof-server cannot be built, missing: ${_missing}")
  endif()
  message(WARNING "spanprof-server is not built into this wheel (missing: ${_missing}); the "
                  "agent and the CLI are. Install a prebuilt spanprof wheel for `spanprof serve`.")
  return()
endif()

set(SPANPROF_SERVER_STATIC ON)
add_subdirectory(server EXCLUDE_FROM_ALL)
add_custom_target(spanprof_server_in_wheel ALL DEPENDS spanprof-server)
install(PROGRAMS $<TARGET_FILE:spanprof-server> DESTINATION spanprof/bin)
spanprof_strip_installed_server()
