# kitchen: the three meals' totals (28, 17, 15 minutes) on the virtual clock.
add_test(NAME example_kitchen COMMAND kitchen)
set_tests_properties(example_kitchen PROPERTIES PASS_REGULAR_EXPRESSION
  "Sequential total: 28\\.0 minutes \\(2\\.80 s\\).*\\[ 2\\.0 min\\] main course preparing.*\\[17\\.0 min\\] main course ready\n  Overlapped total: 17\\.0 minutes \\(1\\.70 s\\).*Main-course-first total: 15\\.0 minutes \\(1\\.50 s\\).*saved 11\\.0 minutes.*saved 2\\.0 more")
add_test(NAME example_kitchen_scale COMMAND kitchen --scale 60)
set_tests_properties(example_kitchen_scale PROPERTIES PASS_REGULAR_EXPRESSION
  "Sequential total: 28\\.0 minutes \\(1680\\.00 s\\)")
add_test(NAME example_kitchen_help COMMAND kitchen --help)
set_tests_properties(example_kitchen_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: kitchen")
# The virtual clock comes from the environment, as a user would set it.
set_tests_properties(example_kitchen example_kitchen_scale PROPERTIES ENVIRONMENT "ALOOP_CLOCK=virtual")
