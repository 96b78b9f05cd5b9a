# aloop-gdb.py - gdb commands that understand libaloop's tasks.
#
#   aloop tasks        every task of every loop: id, name, state, what it
#                      waits for (the same words as aloop_dump)
#   aloop bt TASK      a task's stack, innermost first, with functions and
#                      source lines; TASK is its id (as listed), its name,
#                      or its address (an aloop_task_t *)
#
# Works on a live process (gdb -p PID, or gdb PROGRAM) and on a core file.
# It reads the library's own structures, so the library must have its debug
# information (the default RelWithDebInfo and Debug builds have it). A
# suspended task's stack is walked by its frame records from the context
# its switch saved (the library is built with frame pointers; frames of
# code built without them are lost, as in aloop_task_backtrace), reading
# only inside the task's stack.
#
# Load it with `source <prefix>/share/aloop/aloop-gdb.py`; installed with
# the library, gdb also loads it by itself with libaloop.so (auto-load, if
# `<prefix>/share/gdb/auto-load` is on gdb's auto-load safe path).

import gdb

ALOOP_PENDING = 0


def _lookup_static(name):
    sym = None
    try:
        sym = gdb.lookup_static_symbol(name)
    except (AttributeError, gdb.error):
        sym = None
    if sym is None:
        sym = gdb.lookup_global_symbol(name)
    if sym is None:
        try:
            return gdb.parse_and_eval(name)
        except gdb.error:
            return None
    return sym.value()


def _loops():
    """Every loop alive in the process (registry.c's chain of blocks)."""
    block = _lookup_static("registry_blocks")
    if block is None:
        raise gdb.GdbError("aloop: libaloop's debug information is not loaded "
                           "(no registry_blocks); build it with -g")
    loops = []
    b = block.address
    while int(b):
        entries = b["e"]
        lo, hi = entries.type.range()
        for i in range(lo, hi + 1):
            loop = entries[i]["loop"]
            if int(loop):
                loops.append(loop)
        b = b["next"]
    return loops


def _offset_of(struct_name, *path):
    t = gdb.lookup_type(struct_name)
    off = 0
    for name in path:
        f = next(f for f in t.fields() if f.name == name)
        off += f.bitpos // 8
        t = f.type.strip_typedefs()
    return off


def _tasks(loop):
    """The loop's unfinished tasks, in spawn order."""
    task_ptr = gdb.lookup_type("struct aloop_task").pointer()
    off = _offset_of("struct aloop_task", "fut", "live")
    head = loop["tasks"].address
    node = loop["tasks"]["next"]
    seen = 0
    while node != head and seen < 10000000:
        yield gdb.Value(int(node) - off).cast(task_ptr)
        node = node["next"]
        seen += 1


def _string(ptr):
    try:
        return ptr.string() if int(ptr) else None
    except gdb.error:
        return None


def _task_name(t):
    return _string(t["name"]) or "Task-%d" % int(t["id"])


def _state(loop, t):
    if int(loop["current"]) == int(t):
        return "running"
    if not int(t["started"]):
        return "not started"
    if int(t["wait"]):
        return "suspended"
    if int(t["queued"]):
        return "ready"
    return "?"


def _wait(t):
    w = t["wait"]
    if not int(w):
        return ""
    try:
        return _wait_record(w)
    except gdb.MemoryError:
        return ", in ? (its stack is not in this core: see `help aloop bt`)"


def _wait_record(w):
    aw = w["awaiting"]
    if int(aw):
        if int(aw["is_task"]):
            return ", awaiting task '%s'" % _task_name(
                aw.cast(gdb.lookup_type("struct aloop_task").pointer()))
        return ", awaiting future 0x%x" % int(aw)
    return ", in %s" % (_string(w["what"]) or "a wait")


def _word():
    return gdb.lookup_type("unsigned long").sizeof


def _read_word(addr):
    inf = gdb.selected_inferior()
    data = bytes(inf.read_memory(addr, _word()))
    return int.from_bytes(data, "little")


def _arch():
    name = gdb.selected_frame().architecture().name() if gdb.selected_thread() else ""
    return "aarch64" if "aarch64" in name else "x86-64"


def _saved_pc_fp(coro):
    """Where a suspended coroutine resumes and its frame pointer (coro.c's
    aloop__coro_saved_pc_fp): the asm switch's frame, or, under the
    ucontext switch, the switch's own frame record kept in ctx.sp."""
    sp = int(coro["ctx"]["sp"])
    if int(coro["ctx"]["uc"]):
        return 0, sp
    w = _word()
    if _arch() == "aarch64":
        return _read_word(sp + 11 * w), _read_word(sp + 10 * w)
    return _read_word(sp + 6 * w), _read_word(sp + 5 * w)


def _frames(t, limit=256):
    coro = t["coro"]
    lo = int(coro["stack_lo"])
    hi = lo + int(coro["stack_size"])
    pc, fp = _saved_pc_fp(coro)
    frames = [pc] if pc else []
    w = _word()
    while len(frames) < limit and lo <= fp <= hi - 2 * w and fp % w == 0:
        nxt, ret = _read_word(fp), _read_word(fp + w)
        if not ret:
            break
        if _arch() == "aarch64":
            ret &= (1 << 48) - 1  # pointer authentication bits
        frames.append(ret)
        if nxt <= fp:
            break
        fp = nxt
    return frames


def _describe(pc):
    """function + offset, and file:line when gdb knows them."""
    look = pc - 1  # a return address: its call is just before it
    block = None
    try:
        block = gdb.block_for_pc(look)
    except RuntimeError:
        pass
    while block is not None and block.function is None:
        block = block.superblock
    if block is not None:
        name = "%s+0x%x" % (block.function.print_name, pc - int(block.function.value().address))
    else:
        sym = gdb.execute("info symbol 0x%x" % look, to_string=True).strip()
        name = sym.split(" in section")[0] if not sym.startswith("No symbol") else "??"
        name = name.replace(" + ", "+")
    sal = gdb.find_pc_line(look)
    where = ""
    if sal.symtab is not None:
        where = " at %s:%d" % (sal.symtab.filename, sal.line)
    return name + where


class AloopCommand(gdb.Command):
    """libaloop: aloop tasks | aloop bt TASK"""

    def __init__(self):
        super().__init__("aloop", gdb.COMMAND_STACK, gdb.COMPLETE_NONE, True)


class AloopTasks(gdb.Command):
    """List every task of every loop: id, name, state and what it waits for."""

    def __init__(self):
        super().__init__("aloop tasks", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        for loop in _loops():
            print("loop 0x%x: %d unfinished task(s)" % (int(loop), int(loop["task_count"])))
            for t in _tasks(loop):
                print("  #%d '%s' (0x%x): %s%s" % (int(t["id"]), _task_name(t), int(t),
                                                   _state(loop, t), _wait(t)))


def _find_task(arg):
    arg = arg.strip()
    if not arg:
        raise gdb.GdbError("usage: aloop bt TASK (an id, a name or an address)")
    for loop in _loops():
        for t in _tasks(loop):
            if arg.lstrip("#") == str(int(t["id"])) or arg == _task_name(t):
                return loop, t
            try:
                if int(arg, 0) == int(t):
                    return loop, t
            except ValueError:
                pass
    raise gdb.GdbError("aloop: no unfinished task %s" % arg)


class AloopBt(gdb.Command):
    """Print a task's stack: aloop bt TASK (an id, a name or an address).

The stack is walked by its frame records from where the task's switch saved
it, innermost frame first, with function+offset and file:line. In a core
made by gcore the stacks may be missing: gdb 13 leaves out each 1 MiB piece
of memory that holds a guard page, and the tasks' guard pages sit inside
their stacks' mapping on Linux 6.13+ (ALOOP_NO_GUARD_PAGES avoids it)."""

    def __init__(self):
        super().__init__("aloop bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        loop, t = _find_task(arg)
        state = _state(loop, t)
        print("task #%d '%s': %s%s" % (int(t["id"]), _task_name(t), state, _wait(t)))
        if state == "not started":
            print("  (no stack yet)")
            return
        if state == "running":
            print("  (the running task: its stack is the loop thread's; use bt there)")
            return
        try:
            frames = _frames(t)
        except gdb.MemoryError:
            raise gdb.GdbError(
                "aloop: task #%d's stack is not readable here. gcore (gdb 13) leaves out "
                "every 1 MiB piece of memory that holds a guard page, and task stacks "
                "have theirs inside one mapping (Linux 6.13+ guard regions): run the "
                "program with ALOOP_NO_GUARD_PAGES to gcore it" % int(t["id"]))
        for i, pc in enumerate(frames):
            print("  #%-2d 0x%016x in %s" % (i, pc, _describe(pc)))


AloopCommand()
AloopTasks()
AloopBt()
