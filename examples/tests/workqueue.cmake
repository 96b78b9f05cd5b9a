# workqueue: the course's output order, 3.2 s blocking vs 1.7 s with aloop_sleep.
add_test(NAME example_workqueue COMMAND workqueue)
set_tests_properties(example_workqueue PROPERTIES PASS_REGULAR_EXPRESSION
  "Task One running\nTask One elapsed time: 1\\.5\nTask Two running\nTask Two elapsed time: 1\\.0\nTask One running\nTask One elapsed time: 0\\.5\nTask Two running\nTask Two elapsed time: 0\\.2\n\nTotal elapsed time: 3\\.2\n.*Task One running\nTask Two running\nTask Two elapsed time: 1\\.0\nTask Two running\nTask One elapsed time: 1\\.5\nTask One running\nTask Two elapsed time: 0\\.5\nTask One elapsed time: 0\\.2\n\nTotal elapsed time: 1\\.7")
add_test(NAME example_workqueue_scale COMMAND workqueue --async --scale 1)
set_tests_properties(example_workqueue_scale PROPERTIES PASS_REGULAR_EXPRESSION
  "Task One elapsed time: 15\\.0\n.*Total elapsed time: 17\\.0")
add_test(NAME example_workqueue_help COMMAND workqueue --help)
set_tests_properties(example_workqueue_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: workqueue")
# The virtual clock comes from the environment, as a user would set it.
set_tests_properties(example_workqueue example_workqueue_scale PROPERTIES ENVIRONMENT "ALOOP_CLOCK=virtual")
