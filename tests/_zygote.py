"""Run training scripts in fresh processes forked from one that has imported the frameworks.

Importing Lightning takes seconds per process on a small machine; a test that starts dozens of
short jobs forks them instead from a server process (this file, run as a script) that imported
torch and the frameworks once, the way torchrun's ``--start-method fork`` forks its workers. Each
job's ranks are forked together, get the environment variables torchrun would give them
(``RANK``, ``WORLD_SIZE``, ``MASTER_PORT``, ``TORCHELASTIC_RUN_ID``, ...), and run the script as
``__main__``; the server reports every rank's exit status (``-9`` for a SIGKILL).

Only the standard library is imported at module level: the client side runs inside pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _serve(preload: list[str]) -> None:
    import importlib
    import runpy
    import traceback

    for name in preload:
        with contextlib.suppress(ImportError):  # the tests that need it are skipped
            importlib.import_module(name)
    out = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        pids = []
        for env, log in zip(request["envs"], request["logs"], strict=True):
            pid = os.fork()
            if pid == 0:  # a rank
                code = 1
                try:
                    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.dup2(fd, 1)
                    os.dup2(fd, 2)
                    devnull = os.open(os.devnull, os.O_RDONLY)
                    os.dup2(devnull, 0)
                    os.environ.update(env)
                    sys.argv = [request["script"], *request["argv"]]
                    runpy.run_path(request["script"], run_name="__main__")
                    code = 0
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else 1
                except BaseException:
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            pids.append(pid)
        out.write(json.dumps({"pids": pids}) + "\n")
        out.flush()
        codes = []
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            codes.append(os.waitstatus_to_exitcode(status))
        out.write(json.dumps({"codes": codes}) + "\n")
        out.flush()


class Zygote:
    """The client: starts the server, then runs jobs on it one at a time."""

    def __init__(self, preload: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )

    def run(
        self,
        script: Path,
        argv: list[str],
        envs: list[dict[str, str]],
        logs: list[Path],
        timeout: float,
    ) -> list[int]:
        """Run ``script`` once per environment in ``envs`` (its ranks); the exit codes."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {
            "script": str(script),
            "argv": argv,
            "envs": envs,
            "logs": [str(p) for p in logs],
        }
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        pids = json.loads(self.proc.stdout.readline())["pids"]
        deadline = time.monotonic() + timeout
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(max(0.0, deadline - time.monotonic())):
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.stdout.readline()
                raise TimeoutError(f"{script.name} {argv} hung; killed it")
        codes: list[int] = json.loads(self.proc.stdout.readline())["codes"]
        return codes

    def close(self) -> None:
        """Stop the server (it holds no state worth an orderly exit)."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.kill()
        self.proc.wait()


def torchrun_env(rank: int, world: int, port: int) -> dict[str, str]:
    """The environment torchrun gives rank ``rank`` of ``world`` on one machine."""
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "GROUP_RANK": "0",
        "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": str(world),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "TORCHELASTIC_RUN_ID": "local",
        "GLOO_SOCKET_IFNAME": "lo",
        "OMP_NUM_THREADS": "1",
    }


if __name__ == "__main__":
    _serve(sys.argv[1:])
