# Installs the build tree into WORK_DIR/prefix, then configures and builds
# examples/embed (retina::retina) and examples/decode (retina::core alone)
# against it with find_package(retina), then runs their self-tests.
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "install failed: ${rc}")
endif()
if(NOT EXISTS ${WORK_DIR}/prefix/lib/cmake/retina/retinaConfig.cmake)
  message(FATAL_ERROR "no retinaConfig.cmake in the install tree")
endif()
foreach(example embed decode)
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/${example} -B ${WORK_DIR}/build-${example}
                          -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release
                  RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "configuring the ${example} consumer failed: ${rc}")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build-${example} -j2 RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "building the ${example} consumer failed: ${rc}")
  endif()
  execute_process(COMMAND ${WORK_DIR}/build-${example}/${example}_example --self-test RESULT_VARIABLE rc
                  WORKING_DIRECTORY ${WORK_DIR} OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${out}${err}")
  if(rc)
    message(FATAL_ERROR "the ${example} consumer ran and failed: ${rc}")
  endif()
endforeach()
# The core consumer links nothing of the kernel or network layers.
file(STRINGS ${WORK_DIR}/build-decode/CMakeFiles/decode_example.dir/link.txt link_line)
foreach(layer retina_bpf retina_k8s retina_engine bpf curl httplib)
  if(link_line MATCHES "lib${layer}[.]")
    message(FATAL_ERROR "the retina::core consumer links lib${layer}: ${link_line}")
  endif()
endforeach()
