# Loads libaloop's gdb extension (aloop tasks, aloop bt) when gdb loads
# libaloop.so. gdb's auto-load finds this file by the library's path, at
# <prefix>/share/gdb/auto-load/<libdir>/libaloop.so.N-gdb.py; the extension
# is at <prefix>/share/aloop/aloop-gdb.py (CMakeLists.txt installs both).
import os

import gdb

_here = os.path.abspath(__file__)
_mark = os.sep + os.path.join("gdb", "auto-load") + os.sep
if _mark in _here:
    _share = _here[:_here.index(_mark)]
    gdb.execute("source " + os.path.join(_share, "aloop", "aloop-gdb.py"))
