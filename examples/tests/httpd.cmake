# httpd: usage text, and one run per rule against a temporary ROOT with real
# clients (examples/tests/httpd_test.py: http.client, raw sockets, curl when
# installed).
add_test(NAME example_httpd_help COMMAND httpd --help)
set_tests_properties(example_httpd_help PROPERTIES PASS_REGULAR_EXPRESSION
  "usage: .*httpd .*--root DIR.*--max-conns N")
add_test(NAME example_httpd_bad_option COMMAND httpd --loops 0)
set_tests_properties(example_httpd_bad_option PROPERTIES WILL_FAIL TRUE)
add_test(NAME example_httpd_no_root COMMAND httpd --root /nonexistent/dir)
set_tests_properties(example_httpd_no_root PROPERTIES WILL_FAIL TRUE)
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  foreach(t get_head_keepalive pipelining http10 last_modified range traversal
            errors_and_limits slow_headers stalled_reader access_log graceful_shutdown second_signal loops max_conns curl)
    add_test(NAME example_httpd_${t}
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/httpd_test.py
                     $<TARGET_FILE:httpd> ${t})
    set_tests_properties(example_httpd_${t} PROPERTIES TIMEOUT 120)
  endforeach()
else()
  message(STATUS "aloop: python3 not found; the examples/httpd runs are skipped")
endif()
# httpd over TLS (--tls-cert/--tls-key): the same runs with every client on
# TLS, plus keep-alive, ALPN and cleartext clients (tls_session) and curl.
if(ALOOP_EXAMPLES_TLS AND Python3_Interpreter_FOUND)
  foreach(t tls_session tls_curl tls_shutdown tls_handshake_timeout
            tls_get_head_keepalive tls_pipelining tls_http10 tls_range tls_slow_headers tls_loops)
    add_test(NAME example_httpd_${t}
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/httpd_test.py
                     $<TARGET_FILE:httpd> ${t} ${ALOOP_GEN_CERTS})
    set_tests_properties(example_httpd_${t} PROPERTIES TIMEOUT 120)
  endforeach()
endif()
if(ALOOP_EXAMPLES_TLS)
  add_test(NAME example_httpd_tls_bad_files COMMAND httpd --port 0 --tls-cert /nonexistent.pem
                                                    --tls-key /nonexistent.key)
  set_tests_properties(example_httpd_tls_bad_files PROPERTIES PASS_REGULAR_EXPRESSION
    "httpd: cannot use /nonexistent.pem and /nonexistent.key: No such file")
else()
  add_test(NAME example_httpd_without_tls COMMAND httpd --tls-cert a.pem --tls-key a.key)
  set_tests_properties(example_httpd_without_tls PROPERTIES PASS_REGULAR_EXPRESSION
    "built without TLS")
endif()
