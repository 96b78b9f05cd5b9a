# trace: a Chrome trace-event JSON of task run slices, checked for shape
# and consistency with aloop_metrics (tests/trace_test.py).
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  add_test(NAME example_trace
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/trace_test.py
                   $<TARGET_FILE:trace>)
  set_tests_properties(example_trace PROPERTIES PASS_REGULAR_EXPRESSION "trace: ok")
endif()
add_test(NAME example_trace_help COMMAND trace --help)
set_tests_properties(example_trace_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: trace")
