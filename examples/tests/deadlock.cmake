# deadlock --watchdog: on the virtual clock the watchdog sees no progress
# at once and dumps the tasks (exit 1, by design): both tellers wait in
# aloop_lock_acquire called from transfer, each with its own frames.
add_test(NAME example_deadlock_watchdog COMMAND deadlock --watchdog)
set_tests_properties(example_deadlock_watchdog PROPERTIES ENVIRONMENT "ALOOP_CLOCK=virtual"
  PASS_REGULAR_EXPRESSION "watchdog: no transfer finished in 5 s.*task 'teller-A' #1: suspended[^\n]*\n( +#[0-9]+ +[^\n]*\n)* +#[0-9]+ +aloop_lock_acquire\\+0x[0-9a-f]+ \\(deadlock\\)\n +#[0-9]+ +transfer\\+0x[0-9a-f]+ \\(deadlock\\)\n +#[0-9]+ +teller\\+0x.*task 'teller-B' #2: suspended.*transfer\\+0x")
add_test(NAME example_deadlock_help COMMAND deadlock --help)
set_tests_properties(example_deadlock_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: deadlock")
