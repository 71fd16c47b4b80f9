# The target boilerplate every CMakeLists.txt of the project shares, written
# once: the shared + static library pair (src/, src/xpcs, src/mpi) and the
# one-program-per-source-file directories (bench/, fuzz/, tests/, tests/mpi).

# nlsq_add_library_pair(<name> EXPORT_NAME <e> SOURCES <src>...
#   [OBJECT_INCLUDES <dir>...] [OBJECT_LIBS <lib>...] [OBJECT_DEFINITIONS <def>...]
#   [SHARED_PUBLIC <lib>...] [STATIC_PUBLIC <lib>...] [PRIVATE_LIBS <lib>...])
#
# The sources are compiled once as PIC objects with hidden visibility
# (<name>_objects: include/ and the calling folder first, then
# OBJECT_INCLUDES; linked with OBJECT_LIBS for their usage requirements) and
# packaged twice: <name> (shared, versioned SONAME, exported as nlsq::<e>) and
# <name>_static (libNAME.a, exported as nlsq::<e>_static).  SHARED_PUBLIC /
# STATIC_PUBLIC are what a consumer of each links too (the shared or static
# flavour of the project's own libraries); PRIVATE_LIBS what both need.
function(nlsq_add_library_pair name)
  cmake_parse_arguments(PARSE_ARGV 1 A "" "EXPORT_NAME"
    "SOURCES;OBJECT_INCLUDES;OBJECT_LIBS;OBJECT_DEFINITIONS;SHARED_PUBLIC;STATIC_PUBLIC;PRIVATE_LIBS")
  add_library(${name}_objects OBJECT ${A_SOURCES})
  set_target_properties(${name}_objects PROPERTIES POSITION_INDEPENDENT_CODE ON
    C_VISIBILITY_PRESET hidden)
  target_include_directories(${name}_objects PRIVATE ${PROJECT_SOURCE_DIR}/include
    ${CMAKE_CURRENT_SOURCE_DIR} ${A_OBJECT_INCLUDES})
  target_link_libraries(${name}_objects PRIVATE ${A_OBJECT_LIBS})
  if(A_OBJECT_DEFINITIONS)
    target_compile_definitions(${name}_objects PRIVATE ${A_OBJECT_DEFINITIONS})
  endif()
  add_library(${name} SHARED $<TARGET_OBJECTS:${name}_objects>)
  add_library(${name}_static STATIC $<TARGET_OBJECTS:${name}_objects>)
  target_link_libraries(${name} PUBLIC ${A_SHARED_PUBLIC} PRIVATE ${A_PRIVATE_LIBS})
  target_link_libraries(${name}_static PUBLIC ${A_STATIC_PUBLIC} PRIVATE ${A_PRIVATE_LIBS})
  foreach(t ${name} ${name}_static)
    target_include_directories(${t} PUBLIC
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  endforeach()
  set_target_properties(${name} PROPERTIES VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR} EXPORT_NAME ${A_EXPORT_NAME})
  set_target_properties(${name}_static PROPERTIES OUTPUT_NAME ${name}
    EXPORT_NAME ${A_EXPORT_NAME}_static)
  add_library(nlsq::${A_EXPORT_NAME} ALIAS ${name})
  add_library(nlsq::${A_EXPORT_NAME}_static ALIAS ${name}_static)
endfunction()

# nlsq_add_programs(<out_var> GLOB <pattern> [XPCS_MATCH <regex>]
#   LIBS <lib>... [XPCS_LIBS <lib>...] [INCLUDES <dir>...]
#   [DEFINITIONS <def>...] [OPTIONS <flag>...])
#
# One executable per source file matching GLOB (named after the file), linked
# with LIBS; the ones whose name matches XPCS_MATCH need the XPCS library:
# they are skipped without it (NLSQ_BUILD_XPCS OFF) and also link XPCS_LIBS.
# INCLUDES, DEFINITIONS and OPTIONS (compile and link flags) go to every one.
# The names made are returned in <out_var>, for the caller's tests and extras.
function(nlsq_add_programs out_var)
  cmake_parse_arguments(PARSE_ARGV 1 A "" "GLOB;XPCS_MATCH"
    "LIBS;XPCS_LIBS;INCLUDES;DEFINITIONS;OPTIONS")
  file(GLOB sources CONFIGURE_DEPENDS ${A_GLOB})
  set(made)
  foreach(src ${sources})
    get_filename_component(name ${src} NAME_WE)
    set(xpcs OFF)
    if(A_XPCS_MATCH AND name MATCHES "${A_XPCS_MATCH}")
      set(xpcs ON)
    endif()
    if(xpcs AND NOT NLSQ_BUILD_XPCS)
      continue()
    endif()
    add_executable(${name} ${src})
    target_include_directories(${name} PRIVATE ${A_INCLUDES})
    if(A_DEFINITIONS)
      target_compile_definitions(${name} PRIVATE ${A_DEFINITIONS})
    endif()
    if(A_OPTIONS)
      target_compile_options(${name} PRIVATE ${A_OPTIONS})
      target_link_options(${name} PRIVATE ${A_OPTIONS})
    endif()
    target_link_libraries(${name} PRIVATE ${A_LIBS})
    if(xpcs)
      target_link_libraries(${name} PRIVATE ${A_XPCS_LIBS})
    endif()
    list(APPEND made ${name})
  endforeach()
  set(${out_var} ${made} PARENT_SCOPE)
endfunction()
