# proxy: a Python upstream behind it; 100 MB each way checked by SHA-256, a
# client that half-closes first gets its answer, --max-conns, a refused
# upstream, SIGINT (tests/proxy_test.py).
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  add_test(NAME example_proxy
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/proxy_test.py
                   $<TARGET_FILE:proxy>)
  set_tests_properties(example_proxy PROPERTIES TIMEOUT 300 PASS_REGULAR_EXPRESSION "proxy: ok")
endif()
add_test(NAME example_proxy_help COMMAND proxy --help)
set_tests_properties(example_proxy_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: proxy")
