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
# fetch over TLS (examples/tests/fetch_tls_test.py): https:// against local
# Python HTTPS servers with the test CA, refused certificates (wrong CA,
# expired, wrong name, untrusted), --insecure, resumption, hostile servers,
# and examples/httpd over TLS as the server (aloop-tls at both ends). Without
# aloop-tls: the TLS options are refused with exit status 2.
if(ALOOP_EXAMPLES_TLS AND Python3_Interpreter_FOUND)
  add_test(NAME example_fetch_tls
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/fetch_tls_test.py
                   $<TARGET_FILE:fetch> ${ALOOP_GEN_CERTS} $<TARGET_FILE:httpd>)
  set_tests_properties(example_fetch_tls PROPERTIES TIMEOUT 120)
elseif(NOT ALOOP_EXAMPLES_TLS)
  add_test(NAME example_fetch_without_tls COMMAND fetch --insecure https://127.0.0.1:1/)
  set_tests_properties(example_fetch_without_tls PROPERTIES WILL_FAIL TRUE)
endif()
