"""The supervisor's restart policy, with workers that die on purpose.

The supervisor runs in a child Python process (it installs signal handlers
and forks), with its worker body replaced by one that exits at once: the
only way to make "a worker that keeps dying at start" happen on demand.
Sockets, fork, signals and waitpid are all real.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from support import free_port

SCRIPT = textwrap.dedent(
    """
    import logging, os, sys
    from gostfast import logsetup
    from gostfast.config import url
    from gostfast import registry
    from gostfast.service import plan
    from gostfast.supervisor import Supervisor

    logsetup.configure(None, False, pid=True)
    registry.load_builtins()
    p = plan(url.from_urls(["ws://127.0.0.1:%d"], [], registry.names()))

    class Dying(Supervisor):
        def _run_worker(self, *args):
            os._exit(7)

    sys.exit(Dying(p, 2, 1.0, lambda: p).run())
    """
)


def test_workers_that_keep_dying_at_start_make_the_supervisor_exit_1() -> None:
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT % free_port()], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 1, res.stderr
    assert "died 5 times before it was ready" in res.stderr, res.stderr
    assert "exited with status 7" in res.stderr
    # each death was logged with a growing backoff before the supervisor gave up
    assert "restarting in 0.1s" in res.stderr and "restarting in 0.8s" in res.stderr, res.stderr
