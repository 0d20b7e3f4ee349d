# CTest smoke test of sparsereg_train (run with cmake -P). Inputs: TRAIN (binary), WORK (scratch
# directory), REAL_DATA (Fashion-MNIST directory; used for one extra tiny run if it exists).
# 1. writes a synthetic IDX data set and trains on it with regularization, checkpoint and export;
# 2. resumes from the epoch-1 checkpoint and checks the final checkpoint is byte-identical to an
#    uninterrupted run's;
# 3. corrupts a checkpoint: --resume must fail with a checksum error and overwrite nothing.
cmake_minimum_required(VERSION 3.16)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

function(run_train expect_success)
  execute_process(COMMAND "${TRAIN}" ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("$ sparsereg_train ${ARGN}\n${out}${err}")
  if(expect_success AND NOT rc EQUAL 0)
    message(FATAL_ERROR "sparsereg_train failed (exit ${rc})")
  endif()
  if(NOT expect_success AND rc EQUAL 0)
    message(FATAL_ERROR "sparsereg_train succeeded but should have failed")
  endif()
  set(last_output "${out}${err}" PARENT_SCOPE)
endfunction()

run_train(TRUE --write-synthetic "${WORK}/data")
set(common --data "${WORK}/data" --max-train 512 --batch 32 --threads 2 --lambda-group 0.002 --lambda-l1 0.0001
           --var-weight 0.0001 --arch c8k5-p2-c16k5-p2-f32-f10 --no-progress)

run_train(TRUE ${common} --epochs 2 --save "${WORK}/full.ckpt" --export "${WORK}/model.bin" --metrics "${WORK}/m.csv")
if(NOT last_output MATCHES "identical predictions")
  message(FATAL_ERROR "export round trip not confirmed")
endif()
run_train(TRUE ${common} --epochs 1 --save "${WORK}/part.ckpt")
file(COPY_FILE "${WORK}/part.ckpt" "${WORK}/resumed.ckpt")
run_train(TRUE ${common} --epochs 2 --resume "${WORK}/part.ckpt" --save "${WORK}/resumed.ckpt")
file(SHA256 "${WORK}/full.ckpt" h_full)
file(SHA256 "${WORK}/resumed.ckpt" h_resumed)
if(NOT h_full STREQUAL h_resumed)
  message(FATAL_ERROR "resumed run differs from the uninterrupted run")
endif()

# Corrupt: append a byte, so the stored crc32 no longer matches.
file(COPY_FILE "${WORK}/part.ckpt" "${WORK}/corrupt.ckpt")
file(APPEND "${WORK}/corrupt.ckpt" "x")
file(SHA256 "${WORK}/full.ckpt" before)
run_train(FALSE ${common} --epochs 2 --resume "${WORK}/corrupt.ckpt" --save "${WORK}/full.ckpt")
if(NOT last_output MATCHES "checksum mismatch")
  message(FATAL_ERROR "corrupt checkpoint not reported as such")
endif()
file(SHA256 "${WORK}/full.ckpt" after)
if(NOT before STREQUAL after)
  message(FATAL_ERROR "a failed resume overwrote the checkpoint")
endif()

if(EXISTS "${REAL_DATA}/train-images-idx3-ubyte.gz" OR EXISTS "${REAL_DATA}/train-images-idx3-ubyte")
  run_train(TRUE --data "${REAL_DATA}" --max-train 512 --max-test 1000 --epochs 1 --lambda-group 0.002 --no-progress)
else()
  message("no Fashion-MNIST at ${REAL_DATA}: skipped the real-data run")
endif()
