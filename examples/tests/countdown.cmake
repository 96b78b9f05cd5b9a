# countdown: the concurrent order of the course's output, and --gather.
add_test(NAME example_countdown COMMAND countdown)
set_tests_properties(example_countdown PROPERTIES PASS_REGULAR_EXPRESSION
  "0\\.5000 \t\t\tC = 3\n.*0\\.8000 \t\tB = 3\n.*1\\.0000 \tA = 3\n.*1\\.0000 \t\t\tC = 2\n.*1\\.5000 \t\t\tC = 1\n.*1\\.6000 \t\tB = 2\n.*2\\.0000 \tA = 2\n.*2\\.4000 \t\tB = 1\n.*3\\.0000 \tA = 1\n.*Done\\.")
add_test(NAME example_countdown_gather COMMAND countdown --gather)
set_tests_properties(example_countdown_gather PROPERTIES PASS_REGULAR_EXPRESSION
  "gathered: A finished at 3\\.0000\ngathered: B finished at 2\\.4000\ngathered: C finished at 1\\.5000\nDone\\.")
add_test(NAME example_countdown_help COMMAND countdown --help)
set_tests_properties(example_countdown_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: countdown")
# The virtual clock comes from the environment, as a user would set it.
set_tests_properties(example_countdown example_countdown_gather PROPERTIES ENVIRONMENT "ALOOP_CLOCK=virtual")
