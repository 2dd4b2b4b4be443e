"""A module's main() run in-process with its arguments, as AnsiballZ runs it on a host."""

import pytest
from ansible.module_utils.testing import patch_module_args


def run_main(main, args, check_mode=False):
    """Run ``main()`` with ``args``; return its exit code (the result is on stdout)."""
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code
