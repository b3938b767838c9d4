"""Run a snippet in a subprocess compiled as users compile it.

The test processes compile at LLVM's -O0 (``tests/conftest.py``: it halves the
suite's compile time). XLA then contracts and orders floating-point operations
differently, so the last bits of a float can differ from those of the default
build. The golden tests pin exact bits of the data users get (the README's
numbers depend on them), so they compute those in a fresh process without the
test flag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

TEST_XLA_FLAG = "--xla_backend_optimization_level=0"  # what conftest adds to XLA_FLAGS


def in_default_build(snippet: str) -> object:
    """The JSON value that ``snippet`` prints on its last line, run by this
    Python in a subprocess whose XLA_FLAGS lack the tests' -O0 flag."""
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "").replace(TEST_XLA_FLAG, "").strip()
    if flags:
        env["XLA_FLAGS"] = flags
    else:
        env.pop("XLA_FLAGS", None)
    out = subprocess.run(
        [sys.executable, "-c", snippet], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
