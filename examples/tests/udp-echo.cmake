# udp-echo: a server on port 0, a client's round trips against it, a client
# with nobody to answer, SIGINT stops the server (tests/udp_echo.py).
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  add_test(NAME example_udp_echo
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/udp_echo.py
                   $<TARGET_FILE:udp-echo>)
  set_tests_properties(example_udp_echo PROPERTIES TIMEOUT 120 PASS_REGULAR_EXPRESSION "udp-echo: ok")
endif()
add_test(NAME example_udp_echo_help COMMAND udp-echo --help)
set_tests_properties(example_udp_echo_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: udp-echo")
