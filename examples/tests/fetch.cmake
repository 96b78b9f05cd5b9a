# fetch: usage text, and a real run against a local HTTP server that the
# test starts itself (examples/tests/fetch_test.py: 20 URLs with -c 5,
# a 20 MB file, chunked bodies, a URL that never answers, a refused port).
add_test(NAME example_fetch_help COMMAND fetch --help)
set_tests_properties(example_fetch_help PROPERTIES PASS_REGULAR_EXPRESSION
  "usage: .*fetch .*-c N.*-t SECONDS")
add_test(NAME example_fetch_bad_usage COMMAND fetch -c 0 http://127.0.0.1:1/)
set_tests_properties(example_fetch_bad_usage PROPERTIES WILL_FAIL TRUE)
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  add_test(NAME example_fetch_local_server
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/fetch_test.py
                   $<TARGET_FILE:fetch>)
  set_tests_properties(example_fetch_local_server PROPERTIES TIMEOUT 120)
else()
  message(STATUS "aloop: python3 not found; the examples/fetch run against a local server is skipped")
endif()
