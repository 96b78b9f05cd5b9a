# prime: the small numbers report before the big one, which started first
# (the course's output, line for line).
add_test(NAME example_prime COMMAND prime)
set_tests_properties(example_prime PROPERTIES TIMEOUT 120 PASS_REGULAR_EXPRESSION
  "Processing 9637529763296797\\.\\.\\.\nProcessing 427920331\\.\\.\\.\n427920331 is a prime number\\.\nProcessing 157\\.\\.\\.\n157 is a prime number\\.\n9637529763296797 is a prime number\\.\nTook [0-9.]+ seconds\\.")
add_test(NAME example_prime_threads COMMAND prime --threads)
set_tests_properties(example_prime_threads PROPERTIES TIMEOUT 120 PASS_REGULAR_EXPRESSION
  "Took [0-9.]+ seconds on the worker pool\\..*Speed-up: [0-9.]+x")
add_test(NAME example_prime_help COMMAND prime --help)
set_tests_properties(example_prime_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: prime")
