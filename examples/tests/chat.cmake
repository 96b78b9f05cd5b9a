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
