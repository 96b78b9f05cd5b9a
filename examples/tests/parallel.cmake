# parallel: sh -c children with known outputs, one that writes a line in
# pieces, one that hangs (stopped by --timeout), arguments from stdin, the
# -j bound, usage errors (tests/parallel_test.py).
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  add_test(NAME example_parallel
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/parallel_test.py
                   $<TARGET_FILE:parallel>)
  set_tests_properties(example_parallel PROPERTIES TIMEOUT 120 PASS_REGULAR_EXPRESSION "parallel: ok")
endif()
add_test(NAME example_parallel_help COMMAND parallel --help)
set_tests_properties(example_parallel_help PROPERTIES PASS_REGULAR_EXPRESSION
  "usage: parallel \\[-j N\\] \\[--timeout SECS\\]")
add_test(NAME example_parallel_bad_option COMMAND parallel -j 0 true)
set_tests_properties(example_parallel_bad_option PROPERTIES WILL_FAIL TRUE)
