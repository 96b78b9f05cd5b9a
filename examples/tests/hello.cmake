add_test(NAME example_hello COMMAND hello)
set_tests_properties(example_hello PROPERTIES PASS_REGULAR_EXPRESSION
  "got 1 at 0\\.[0-9] s\ngot 2 at 0\\.[0-9] s\ngot 3 at 0\\.[0-9] s\ndone: success")
