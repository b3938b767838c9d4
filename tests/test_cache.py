import os
import subprocess
import sys
from pathlib import Path

from mlmbias.cache import cache_dir


def test_cache_folder_from_the_environment(tmp_path):
    assert cache_dir({"MLMBIAS_NO_CACHE": "1"}) is None
    assert cache_dir({"MLMBIAS_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "mlmbias" / "jax"
    assert cache_dir({}) == Path.home() / ".cache" / "mlmbias" / "jax"


def test_fit_fills_the_cache_and_a_second_call_gives_the_same_table(tmp_path):
    """The cache is written by a first `mlmbias fit` and read by the second (the
    time saved is measured by hand, not asserted: see README)."""
    panel = tmp_path / "panel.csv"
    rows = ["g,x,y"] + [f"{g},{x},{2 * x + g + (x * g) % 3}" for g in range(4) for x in range(5)]
    panel.write_text("\n".join(rows) + "\n")
    env = {**os.environ, "MLMBIAS_NO_CACHE": "0", "MLMBIAS_CACHE_DIR": str(tmp_path / "c")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    cmd = [sys.executable, "-m", "mlmbias", "fit", str(panel), "--group", "g", "--x", "x"]
    cmd += ["--y", "y", "--methods", "fe,re-reml", "--json"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    files = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert files, "nothing was cached"
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert second.stdout == first.stdout
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == files  # all loaded, none new
