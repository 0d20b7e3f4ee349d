# CTest smoke test of sparsereg_train_torch (run with cmake -P). Inputs: TRAIN (sparsereg_train,
# used only to write its synthetic IDX data set), TRAIN_TORCH (the binary under test), WORK.
# A short regularized run must learn the (easy) synthetic task (accuracy >= 80%) and zero some
# groups exactly, without zeroing all of them.
cmake_minimum_required(VERSION 3.16)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
execute_process(COMMAND "${TRAIN}" --write-synthetic "${WORK}/data" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "writing the synthetic data set failed (exit ${rc}):\n${out}${err}")
endif()
execute_process(COMMAND "${TRAIN_TORCH}" --data "${WORK}/data" --steps 100 --batch 32 --lambda 0.01
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("$ sparsereg_train_torch --data ${WORK}/data --steps 100 --batch 32 --lambda 0.01\n${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "sparsereg_train_torch failed (exit ${rc})")
endif()
if(NOT out MATCHES "test accuracy ([0-9]+)\\.[0-9]+%")
  message(FATAL_ERROR "no accuracy reported")
endif()
if(CMAKE_MATCH_1 LESS 80)
  message(FATAL_ERROR "accuracy ${CMAKE_MATCH_1}% < 80% on the synthetic set")
endif()
if(NOT out MATCHES "total: ([0-9]+) of ([0-9]+) groups are exactly zero")
  message(FATAL_ERROR "no structural report")
endif()
if(CMAKE_MATCH_1 EQUAL 0 OR CMAKE_MATCH_1 EQUAL CMAKE_MATCH_2)
  message(FATAL_ERROR "${CMAKE_MATCH_1} of ${CMAKE_MATCH_2} groups are zero: expected some but not all")
endif()
