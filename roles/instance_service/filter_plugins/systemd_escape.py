"""Filters that write a value into a systemd unit so that the program gets it unchanged.

- ``systemd_quoted``: the inside of a double-quoted word (``Environment="K=V"``).
  systemd.syntax(7): a quoted word takes C escapes, so ``\\`` and ``"`` are escaped and a
  newline is written ``\\n``; systemd.unit(5): ``%`` starts a specifier and is doubled.
- ``systemd_exec``: an already shell-quoted command line for ``ExecStart=``.
  systemd.unit(5) specifiers again (``%%``), and systemd.service(5): ExecStart= expands
  ``$NAME`` and ``${NAME}`` from the environment, so ``$`` is doubled.

Pure functions (tests/unit/test_instance_units.py renders the units through them).
"""


def systemd_quoted(value):
    text = str(value)
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("%", "%%")):
        text = text.replace(raw, escaped)
    return text


def systemd_exec(value):
    return str(value).replace("%", "%%").replace("$", "$$")


class FilterModule:
    def filters(self):
        return {"systemd_quoted": systemd_quoted, "systemd_exec": systemd_exec}
