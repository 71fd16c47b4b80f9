# Run an MPI test program twice with the same process count and require both
# runs to pass and to write the same digest file (bitwise-equal results
# across separate runs).  -D MPIEXEC_CMD=<;-list: mpiexec and its flags>
# -D PROG=<test program> -D OUT=<digest file prefix>
string(REPLACE "|" ";" MPIEXEC_CMD "${MPIEXEC_CMD}")
foreach(run 1 2)
  execute_process(COMMAND ${MPIEXEC_CMD} ${PROG} ${OUT}.${run}
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "run ${run} failed (${rc})")
  endif()
endforeach()
file(READ ${OUT}.1 d1)
file(READ ${OUT}.2 d2)
if(NOT d1 STREQUAL d2 OR d1 STREQUAL "")
  message(FATAL_ERROR "the two runs differ:\n${d1}\n--\n${d2}")
endif()
message(STATUS "two runs bitwise equal:\n${d1}")
