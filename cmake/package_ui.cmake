# The built web UI in the wheel: spanprof/_ui/ (index.html, assets/, spanprof-ui-version).
# Taken from ui/dist when it is built (a checkout after scripts/build, or the sdist, which
# carries it); otherwise built here with npm when ui/node_modules is installed.
set(SPANPROF_UI_DIST "${CMAKE_CURRENT_SOURCE_DIR}/ui/dist" CACHE PATH "built web UI to package")
file(READ "${CMAKE_CURRENT_SOURCE_DIR}/ui/package.json" _ui_package)
string(JSON _ui_version GET "${_ui_package}" version)
file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/spanprof-ui-version" "${_ui_version}\n")

if(EXISTS "${SPANPROF_UI_DIST}/index.html")
  install(DIRECTORY "${SPANPROF_UI_DIST}/" DESTINATION spanprof/_ui)
else()
  find_program(SPANPROF_NPM npm)
  if(NOT SPANPROF_NPM OR NOT EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/ui/node_modules")
    message(WARNING "the web UI is not in this wheel: ${SPANPROF_UI_DIST} is not built and "
                    "npm or ui/node_modules is missing (cd ui && npm ci)")
    return()
  endif()
  set(_out "${CMAKE_CURRENT_BINARY_DIR}/ui-dist")
  add_custom_target(spanprof_ui ALL
    COMMAND "${SPANPROF_NPM}" run --silent build -- --outDir "${_out}" --emptyOutDir
    WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}/ui" VERBATIM)
  install(DIRECTORY "${_out}/" DESTINATION spanprof/_ui)
endif()
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/spanprof-ui-version" DESTINATION spanprof/_ui)
