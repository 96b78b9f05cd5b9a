# embed-glib (built only with GLib): aloop tasks inside a GLib main loop;
# the script checks both sides' progress and the order of events.
if(TARGET embed-glib)
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(Python3_Interpreter_FOUND)
    add_test(NAME example_embed_glib
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/embed_glib.py
                     $<TARGET_FILE:embed-glib>)
    set_tests_properties(example_embed_glib PROPERTIES TIMEOUT 60 PASS_REGULAR_EXPRESSION "embed-glib: ok")
  endif()
  add_test(NAME example_embed_glib_help COMMAND embed-glib --help)
  set_tests_properties(example_embed_glib_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: embed-glib")
endif()
