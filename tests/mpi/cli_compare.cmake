# fit_xpcs vs fit_xpcs_mpi under mpirun: the same JSON (json_close), one line
# of output (only rank 0 prints), the same exit code; and a bad input under
# mpirun ends (exit code != 0) with one message instead of hanging.
# -D MPIEXEC_CMD=<mpiexec, -n N and flags, separated by |> -D FIT=... -D FIT_MPI=...
# -D SYNTH=... -D JSON_CLOSE=... -D WORK=<dir> -D NP=<N>
string(REPLACE "|" ";" MPIEXEC_CMD "${MPIEXEC_CMD}")
set(h5 ${WORK}/cli_np${NP}.h5)
execute_process(COMMAND ${SYNTH} ${h5} --frames 150 --angles 4 --seed 11
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "xpcs_synth failed (${rc})")
endif()
# --dt 0.01: the synthetic data's own frame time (with 1e-3 the shear is undetermined
# and LM ends STALLED in a flat valley, where pass counts depend on rounding)
set(args ${h5} --dt 0.01 --gap 2e6 --threads 1 --json)
execute_process(COMMAND ${FIT} ${args} RESULT_VARIABLE rc1 OUTPUT_VARIABLE out1)
execute_process(COMMAND ${MPIEXEC_CMD} ${FIT_MPI} ${args} RESULT_VARIABLE rcn OUTPUT_VARIABLE outn
                ERROR_VARIABLE errn)
file(WRITE ${WORK}/cli_np${NP}.1.json "${out1}")
file(WRITE ${WORK}/cli_np${NP}.n.json "${outn}")
if(NOT rc1 EQUAL rcn)
  message(FATAL_ERROR "exit codes differ: fit_xpcs ${rc1}, mpirun fit_xpcs_mpi ${rcn}\n${errn}")
endif()
string(REGEX MATCHALL "\n" nl "${outn}")
list(LENGTH nl lines)
if(NOT lines EQUAL 1)
  message(FATAL_ERROR "expected one line from rank 0, got ${lines}:\n${outn}")
endif()
execute_process(COMMAND ${JSON_CLOSE} ${WORK}/cli_np${NP}.1.json ${WORK}/cli_np${NP}.n.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE cmp ERROR_VARIABLE cmperr)
message(STATUS "fit_xpcs exit ${rc1}; mpirun -np ${NP} fit_xpcs_mpi exit ${rcn}; ${cmp}${cmperr}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the results differ")
endif()

# a missing input file: every rank fails before the solve
execute_process(COMMAND ${MPIEXEC_CMD} ${FIT_MPI} ${WORK}/does_not_exist.h5 --dt 1e-3 --gap 2e6
                RESULT_VARIABLE rcb OUTPUT_VARIABLE outb ERROR_VARIABLE errb TIMEOUT 60)
string(REGEX MATCHALL "fit_xpcs: " msgs "${errb}")
list(LENGTH msgs nmsg)
if(rcb EQUAL 0 OR NOT nmsg EQUAL 1)
  message(FATAL_ERROR "bad input under mpirun: exit ${rcb}, ${nmsg} messages:\n${errb}")
endif()
message(STATUS "missing file under mpirun: exit ${rcb}, one message")
