# curl-fetch (built only with libcurl): many concurrent fetches from a local
# http.server on port 0, a 404, a refused connection, a cancelled transfer.
if(TARGET curl-fetch)
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(Python3_Interpreter_FOUND)
    add_test(NAME example_curl_fetch
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/curl_fetch.py
                     $<TARGET_FILE:curl-fetch>)
    set_tests_properties(example_curl_fetch PROPERTIES TIMEOUT 120 PASS_REGULAR_EXPRESSION "curl-fetch: ok")
  endif()
  add_test(NAME example_curl_fetch_help COMMAND curl-fetch --help)
  set_tests_properties(example_curl_fetch_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: curl-fetch")
endif()
