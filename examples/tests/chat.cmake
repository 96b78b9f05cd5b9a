# chat, chat-client, fibserver: usage texts (the servers themselves are
# exercised over loopback by tests/test_chat.c and tests/test_fibserver.c).
add_test(NAME example_chat_help COMMAND chat --help)
set_tests_properties(example_chat_help PROPERTIES PASS_REGULAR_EXPRESSION
  "usage: .*chat .*--bot-interval SECS.*--queue N.*disconnected")
add_test(NAME example_chat_bad_option COMMAND chat --queue 0)
set_tests_properties(example_chat_bad_option PROPERTIES WILL_FAIL TRUE)
add_test(NAME example_chat_client_help COMMAND chat-client --help)
set_tests_properties(example_chat_client_help PROPERTIES PASS_REGULAR_EXPRESSION
  "usage: .*chat-client \\[HOST \\[PORT\\]\\]")
add_test(NAME example_fibserver_help COMMAND fibserver --help)
set_tests_properties(example_fibserver_help PROPERTIES PASS_REGULAR_EXPRESSION
  "usage: .*fibserver .*--threads")
# chat over TLS (examples/tests/chat_tls_test.py): an openssl s_client and a
# Python ssl client chat; a cleartext client on the TLS port is dropped.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(ALOOP_EXAMPLES_TLS AND Python3_Interpreter_FOUND)
  find_program(ALOOP_OPENSSL_BIN openssl)
  if(ALOOP_OPENSSL_BIN)
    add_test(NAME example_chat_tls
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/chat_tls_test.py
                     $<TARGET_FILE:chat> ${ALOOP_GEN_CERTS})
    set_tests_properties(example_chat_tls PROPERTIES TIMEOUT 120)
  endif()
endif()
if(ALOOP_EXAMPLES_TLS)
  add_test(NAME example_chat_tls_bad_files COMMAND chat --port 0 --tls-cert /nonexistent.pem
                                                   --tls-key /nonexistent.key)
  set_tests_properties(example_chat_tls_bad_files PROPERTIES PASS_REGULAR_EXPRESSION
    "chat: cannot use /nonexistent.pem and /nonexistent.key: No such file")
else()
  add_test(NAME example_chat_without_tls COMMAND chat --tls-cert a.pem --tls-key a.key)
  set_tests_properties(example_chat_without_tls PROPERTIES PASS_REGULAR_EXPRESSION
    "built without TLS")
endif()
