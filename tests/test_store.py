"""Integrity of the results store: study identity, completeness, the folder lock
and a full disk. Every test here uses the stand-in methods of ``_fake_methods``."""

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import _fake_methods
import pandas as pd
import pytest
from _fake_methods import fake_methods  # noqa: F401  (autouse: registers the stand-ins)

from mlmbias import runner, store
from mlmbias.cli import main
from mlmbias.errors import ConfigError
from mlmbias.registry import unregister
from mlmbias.runner import Completeness, merge, run_study
from mlmbias.store import load_results
from mlmbias.study import Study, load_study

TESTS = Path(__file__).parent

CONFIG = (
    "seed = {seed}\nreplications = 12\nblock = 6\nlevel = {level}\n"
    'methods = ["t-within", "t-keyed"]\n'
    "[grid]\nn_regions = [3, 4]\n[bayes]\nbatch_size = 4\nreplications = 8\n"
)


def tiny_study(**changes):
    """8 units: per condition two frequentist blocks of 6 and two Bayesian of 4."""
    base = dict(
        seed=3,
        replications=12,
        block=6,
        methods=("t-within", "t-keyed"),
        grid={"n_regions": [3, 4]},
        bayes={"batch_size": 4, "replications": 8},
        name="tiny",
    )
    base.update(changes)
    return Study(**base)


def run(study, out, **kw):
    return run_study(study, out, quiet=True, **kw)


def code(args):
    try:
        return main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code


def one_line(err):
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def same_rows(a, b):
    cols = [c for c in a.columns if c != "batch_seconds"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def config(tmp_path, name="study", seed=1, level=0.94):
    path = tmp_path / f"{name}.toml"
    path.write_text(CONFIG.format(seed=seed, level=level))
    return path


# --------------------------------------------------------------------------- identity


def test_manifest_and_every_part_carry_the_study_identity(tmp_path):
    study = tiny_study()
    run(study, tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    ident = store.study_hash(runner._normalise(study.as_dict()))
    assert manifest["results_format"] == store.RESULTS_FORMAT == 4
    assert manifest["study_hash"] == ident
    assert ident != store.study_hash(runner._normalise(tiny_study(seed=4).as_dict()))
    assert manifest["blocks"] == {"frequentist": 6, "bayes": 4}
    parts = store.part_files(tmp_path)
    assert len(parts) == 8
    for path in parts:
        assert store.part_identity(path) == {
            "study_hash": ident,
            "results_format": 4,
            "unit": store.part_name(tmp_path, path),
        }
    import pyarrow.parquet as pq

    assert b"pandas" in pq.read_schema(parts[0]).metadata  # merged, not replaced
    assert store.read_part(parts[0], ident) is not None
    assert store.read_part(parts[0], "0" * 64) is None
    assert store.check_part(parts[0], "0" * 64)[0] == "foreign"
    assert store.check_part(parts[0], ident, unit="1/t-within/0000000-0000006")[0] == "foreign"


def test_folder_without_manifest_refuses_another_studys_parts(tmp_path, capsys):
    """rm DIR/manifest.json, then another config into DIR: refused, not reused."""
    out = tmp_path / "out"
    a, b = config(tmp_path, "a"), config(tmp_path, "b", seed=2, level=0.9)
    assert code(["run", a, "--out", out, "--quiet"]) == 0
    (out / "manifest.json").unlink()
    capsys.readouterr()
    assert code(["run", b, "--out", out, "--quiet"]) == 2
    err = one_line(capsys.readouterr().err)
    assert str(out) in err and "do not belong to this study" in err and "--force" in err
    assert len(store.part_files(out)) == 8  # nothing was touched
    assert not (out / "manifest.json").exists()
    assert code(["run", b, "--out", out, "--quiet", "--force"]) == 0
    assert "removed 8 files of another study" in capsys.readouterr().err
    ref = tmp_path / "ref"
    run(load_study(b), ref)
    same_rows(load_results(ref), load_results(out))
    # the same study again without a manifest: its parts are reused
    (out / "manifest.json").unlink()
    summary = run(load_study(b), out)
    assert summary.skipped == summary.units == 8 and summary.ran == 0


def test_part_without_identity_is_refused_without_manifest(tmp_path):
    import pyarrow.parquet as pq

    run(tiny_study(), tmp_path)
    (tmp_path / "manifest.json").unlink()
    victim = store.part_files(tmp_path)[3]
    table = pq.read_table(victim)
    meta = {k: v for k, v in table.schema.metadata.items() if k != b"mlmbias"}
    pq.write_table(table.replace_schema_metadata(meta), victim)  # as an older mlmbias wrote it
    with pytest.raises(ConfigError, match="holds 1 stored files that do not belong"):
        run(tiny_study(), tmp_path)
    summary = run(tiny_study(), tmp_path, force=True)
    assert (summary.skipped, summary.ran) == (7, 1)
    assert store.part_identity(victim) is not None


def test_store_of_another_format_is_one_line_exit_2_and_untouched(tmp_path, capsys):
    """A folder written by a newer mlmbias (format 5): run and report refuse it in
    one line naming both versions, before writing anything; --force replaces it."""
    from mlmbias import __version__

    out = tmp_path / "out"
    study = config(tmp_path)
    assert code(["run", study, "--out", out, "--quiet"]) == 0
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    assert (manifest["mlmbias"], manifest["results_format"]) == (__version__, 4)
    assert {"python", "jax", "numpyro", "backend", "devices", "cpu_count"} <= set(manifest)
    newer = {**manifest, "results_format": 5, "mlmbias": "9.0.0", "study": {"renamed": 1}}
    path.write_text(json.dumps(newer))
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    capsys.readouterr()
    for args in (["run", study, "--out", out, "--quiet"], ["report", out, "--no-pair-plot"]):
        assert code(args) == 2
        err = one_line(capsys.readouterr().err)
        assert f"format 5 written by mlmbias 9.0.0; this mlmbias {__version__}" in err
        assert "reads and writes format 4" in err and "never mixed" in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert json.loads(path.read_text()) == newer
    assert code(["run", study, "--out", out, "--quiet", "--force"]) == 0
    assert json.loads(path.read_text())["results_format"] == 4


def test_older_format_and_edited_manifest_are_refused(tmp_path):
    run(tiny_study(), tmp_path)
    path = tmp_path / "manifest.json"
    good = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "results_format"}))
    with pytest.raises(ConfigError, match="format 1 written by mlmbias "):
        run(tiny_study(), tmp_path)
    with pytest.raises(ConfigError, match="format 1"):
        load_results(tmp_path)
    path.write_text(json.dumps({**good, "study_hash": "0" * 64}))
    with pytest.raises(ConfigError, match="study_hash does not match"):
        load_results(tmp_path)
    with pytest.raises(ConfigError, match="study_hash does not match"):
        run(tiny_study(), tmp_path)
    summary = run(tiny_study(), tmp_path, force=True)
    assert summary.ran == 8


@pytest.mark.parametrize(
    "content",
    [
        "[1, 2]",
        '"text"',
        '{"study": [1]}',
        '{"shard": [1, 1]}',
        '{"study": {}, "shard": "1/2"}',
        '{"study": {}, "blocks": {"bayes": "16"}}',
        '{"study": {}, "results_format": "4"}',
    ],
)
def test_manifest_of_the_wrong_shape_is_one_line(tmp_path, capsys, content):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "manifest.json").write_text(content)
    with pytest.raises(ConfigError, match="corrupt manifest"):
        store.read_manifest(folder)
    good = config(tmp_path)
    for args in (
        ["report", folder, "--figures", tmp_path / "f", "--no-pair-plot"],
        ["report", folder, "--strict"],
        ["run", good, "--out", folder, "--quiet"],
        ["merge", tmp_path / "m", folder],
    ):
        assert code(args) == 2, args
        assert "corrupt manifest" in one_line(capsys.readouterr().err)


def test_plan_uses_the_batch_size_the_folder_was_started_with(tmp_path, monkeypatch):
    """Without [bayes] batch_size the block depends on the backend: a GPU run
    reported or resumed on a CPU must plan the units it was started with."""
    from mlmbias.bayes import options

    study = tiny_study(bayes={"replications": 8})
    monkeypatch.setattr(options, "default_batch_size", lambda backend=None, engine="nuts": 3)
    run(study, tmp_path / "gpu")
    run(study, tmp_path / "s1", shard=(1, 2))
    monkeypatch.undo()
    manifest = json.loads((tmp_path / "gpu" / "manifest.json").read_text())
    assert manifest["blocks"]["bayes"] == 3 != options.default_batch_size()
    assert runner.completeness(tmp_path / "gpu").complete
    summary = run(study, tmp_path / "gpu")
    assert summary.skipped == summary.units and summary.ran == 0
    run(study, tmp_path / "s2", shard=(2, 2))
    with pytest.raises(ConfigError, match="other batch sizes"):
        merge(tmp_path / "m", [tmp_path / "s1", tmp_path / "s2"])


# --------------------------------------------------------------------------- completeness


def test_truncated_and_missing_parts_are_named_not_dropped(tmp_path, capsys):
    run(tiny_study(), tmp_path)
    full = load_results(tmp_path)
    assert capsys.readouterr().err == ""
    assert full.attrs["completeness"]["complete"]
    parts = store.part_files(tmp_path)
    names = [store.part_name(tmp_path, p) for p in parts[:2]]
    rows = [len(pd.read_parquet(p)) for p in parts[:2]]
    data = parts[0].read_bytes()
    parts[0].write_bytes(data[: len(data) // 2])
    parts[1].unlink()
    df = load_results(tmp_path)
    err = capsys.readouterr().err
    assert len(df) == len(full) - sum(rows) > 0  # what is there is still returned
    assert "incomplete study: 2 of 8 batches missing (1 unreadable, 1 never written)" in err
    assert f"{names[0]} (unreadable)" in err and f"{names[1]} (never written)" in err
    check = Completeness.from_dict(df.attrs["completeness"])
    assert check == runner.completeness(tmp_path)
    assert check.unreadable == (names[0],) and check.missing == (names[1],)
    assert not check.complete and check.present == 6 and check.planned == 8
    json.dumps(df.attrs)  # attrs stay JSON, so DataFrame.to_parquet still works


def test_parts_outside_the_plan_are_not_read_twice(tmp_path, capsys):
    """A folder forced onto another shard keeps the old shard's parts: not read."""
    run(tiny_study(), tmp_path, shard=(1, 2))
    run(tiny_study(), tmp_path, shard=(2, 2), force=True)
    df = load_results(tmp_path)
    assert "4 parts in" in capsys.readouterr().err
    assert df.attrs["completeness"]["complete"] and df.attrs["completeness"]["extra"] == 4
    assert len(df) == len(df.drop_duplicates(["condition_index", "rep", "method", "estimand"]))


def test_unknown_method_reads_the_studys_parts_and_says_it_cannot_check(tmp_path, capsys):
    """A method this installation lacks: the plan cannot be rebuilt; say so, and
    read only the parts that carry the study's identity."""
    run(tiny_study(), tmp_path)
    full = load_results(tmp_path)
    spec = next(s for s in _fake_methods.SPECS if s.name == "t-keyed")
    unregister("t-keyed")
    try:
        df = load_results(tmp_path)
        err = capsys.readouterr().err
        assert "cannot check that the study is complete" in err and "t-keyed" in err
        assert not df.attrs["completeness"]["complete"]
        same_rows(full, df)
        assert runner.completeness(tmp_path).planned is None
    finally:
        from mlmbias.registry import register

        register(spec)


def test_long_lists_of_missing_batches_are_cut():
    check = Completeness("x", 20, 5, missing=tuple(f"u{i}" for i in range(15)))
    lines = check.lines()
    assert lines[0] == "x: incomplete study: 15 of 20 batches missing (15 never written)"
    assert lines[1:11] == [f"  u{i} (never written)" for i in range(10)]
    assert lines[11:] == ["  ... and 5 more"]
    assert check.one_line().endswith("u2 (never written) and 12 more")


def _boom_shards(tmp_path):
    """Two shards of a study whose t-boom batches fail at R = 4 (all in shard 2)."""
    study = tiny_study(methods=("t-within", "t-boom"), bayes={})
    for k in (1, 2):
        run(study, tmp_path / f"s{k}", shard=(k, 2))
    return study


def test_merge_copies_failed_batches_and_warns_when_incomplete(tmp_path, capsys):
    _boom_shards(tmp_path)
    assert len(store.error_files(tmp_path / "s2")) == 2
    capsys.readouterr()
    # both shards: complete in shards, but two failed batches
    assert code(["merge", tmp_path / "m", tmp_path / "s1", tmp_path / "s2"]) == 0
    out, err = capsys.readouterr()
    assert "merged 6 parts and 2 failed-batch records from 2 shard folders" in out
    assert err.startswith("mlmbias merge: warning: ") and "2 of 8 batches missing (2 failed)" in err
    one_line(err)
    assert len(store.error_files(tmp_path / "m")) == 2
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["incomplete"] is True
    # one shard missing
    assert code(["merge", tmp_path / "m2", tmp_path / "s1"]) == 0
    err = one_line(capsys.readouterr().err)
    assert "shards 2/2 not given" in err and "4 of 8 batches missing (4 never written)" in err
    check = runner.completeness(tmp_path / "m2")
    assert check.flagged and len(check.missing) == 4 and not check.complete
    # a complete merge says nothing on stderr
    run(tiny_study(), tmp_path / "t1", shard=(1, 2))
    run(tiny_study(), tmp_path / "t2", shard=(2, 2))
    assert code(["merge", tmp_path / "m3", tmp_path / "t1", tmp_path / "t2"]) == 0
    assert capsys.readouterr().err == ""
    assert "incomplete" not in json.loads((tmp_path / "m3" / "manifest.json").read_text())


# --------------------------------------------------------------------------- the lock

HOLDER = (
    "import sys, time\nfrom pathlib import Path\nfrom mlmbias import store\n"
    "with store.lock_folder(Path(sys.argv[1])):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(600)\n"
)


def _hold_lock(folder):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_run_into_a_locked_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    run(tiny_study(), tmp_path / "shard")
    holder = _hold_lock(out)
    try:
        with pytest.raises(ConfigError, match=rf"in use by another mlmbias run .*pid {holder.pid}"):
            run(tiny_study(), out)
        assert code(["run", config(tmp_path), "--out", out, "--quiet"]) == 2
        err = one_line(capsys.readouterr().err)
        assert f"{out} is in use by another mlmbias run" in err and str(holder.pid) in err
        with pytest.raises(ConfigError, match="in use by another mlmbias run"):
            merge(out, [tmp_path / "shard"])
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
    finally:
        holder.kill()  # SIGKILL: the kernel drops its lock
        holder.wait()
        holder.stdout.close()
    assert (out / ".lock").exists()
    summary = run(tiny_study(), out)
    assert summary.ran == summary.units == 8


def test_only_temporaries_of_gone_writers_are_removed(tmp_path):
    names = []
    store._atomic_write_bytes(tmp_path / "x.bin", lambda fh: names.append(Path(fh.name)))
    assert store._writer_pid(names[0]) == os.getpid()

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        folder = tmp_path / "study"
        sub = folder / "parts" / "1" / "t-within"
        sub.mkdir(parents=True)
        (folder / "errors" / "1").mkdir(parents=True)
        keep = sub / f".0000000-0000006.parquet.{live.pid}.{'a' * 32}.tmp"
        gone = [
            sub / f".0000006-0000012.parquet.{dead.pid}.{'b' * 32}.tmp",
            sub / f".0000000-0000006.parquet.{'c' * 32}.tmp",  # an older mlmbias's name
            folder / "errors" / "1" / f".x.json.{dead.pid}.{'d' * 32}.tmp",
            folder / f".manifest.json.{dead.pid}.{'e' * 32}.tmp",
        ]
        for p in [keep, *gone]:
            p.write_bytes(b"partial")
        run(tiny_study(), folder)  # removes at start-up what has no living writer
        assert keep.exists() and not any(p.exists() for p in gone)
    finally:
        live.kill()
        live.wait()
    store.remove_temporaries(folder)
    assert store.temporaries(folder) == []


# --------------------------------------------------------------------------- full disk


def _disk_full_after(monkeypatch, kind, good_writes):
    """Make the store's low-level write fail with ENOSPC for files of ``kind``
    ("parquet", "json" error records, or the "manifest") after ``good_writes``."""
    real = store._atomic_write_bytes
    seen = {"n": 0}

    def matches(path):
        if kind == "manifest":
            return path.name == store.MANIFEST
        if kind == "json":
            return path.suffix == ".json" and path.name != store.MANIFEST
        return path.suffix == ".parquet"

    def write(path, writer):
        if matches(path):
            seen["n"] += 1
            if seen["n"] > good_writes:

                def partial(fh):
                    fh.write(b"PAR1 half a part")
                    raise OSError(errno.ENOSPC, "No space left on device")

                return real(path, partial)
        return real(path, writer)

    monkeypatch.setattr(store, "_atomic_write_bytes", write)


@pytest.mark.parametrize("kind", ["parquet", "json", "manifest"])
def test_full_disk_stops_with_one_line_and_resumes(tmp_path, monkeypatch, capsys, kind):
    text = CONFIG.format(seed=5, level=0.94)
    if kind == "json":  # a failing batch whose error record cannot be written
        text = text.replace('"t-keyed"', '"t-keyed", "t-boom"')
    cfg = tmp_path / "study.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    args = ["run", cfg, "--out", out, "--quiet"]
    with monkeypatch.context() as m:
        _disk_full_after(m, kind, 3 if kind == "parquet" else 0)
        assert code(args) == 2
    out_text, err = capsys.readouterr()
    one_line(err)
    assert err.startswith("mlmbias run: error: cannot write to ")
    assert "No space left on device" in err and "finished batches are saved" in err
    assert "free space" in err and "run the same command again" in err
    assert store.temporaries(out) == []
    if kind == "parquet":
        assert len(store.part_files(out)) == 3
    assert code(args) == (1 if kind == "json" else 0)  # t-boom fails at R = 4
    ref = tmp_path / "ref"
    run(load_study(cfg), ref)
    same_rows(load_results(ref), load_results(out))


def test_copy_of_a_study_keeps_identity(tmp_path):
    """A study folder copied elsewhere is still the same study."""
    run(tiny_study(), tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    summary = run(tiny_study(), tmp_path / "b")
    assert summary.skipped == 8 and runner.completeness(tmp_path / "b").complete
