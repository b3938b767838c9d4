import io

from mlmbias.progress import LineProgress, progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_lines_at_each_condition_and_every_interval_not_redraws():
    out, clock = io.StringIO(), Clock()
    p = LineProgress(6, out, interval=10.0, clock=clock)
    for i, (cond, dt) in enumerate([(1, 1), (1, 1), (2, 1), (2, 1), (2, 20), (2, 1)]):
        clock.t += dt
        p.set_description(f"condition {cond}/2 fe reps {i}-{i}")
        p.update(1)
    p.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    # first batch, the change to condition 2, the 20 s step, the closing line
    assert [ln.split(":")[1].split()[0] for ln in lines] == ["1/6", "3/6", "5/6", "6/6"]
    assert lines[1].endswith("condition 2/2 fe reps 2-2")
    assert "(50%) in 3 s, about 3 s left" in lines[1]


def test_no_closing_line_when_the_last_batch_was_reported():
    out, clock = io.StringIO(), Clock()
    p = LineProgress(1, out, clock=clock)
    p.set_description("condition 1/1 fe reps 0-9")
    p.update(1)
    p.close()
    assert len(out.getvalue().splitlines()) == 1


def test_a_pipe_gets_lines_and_quiet_gets_nothing():
    assert isinstance(progress(3, quiet=False, stream=io.StringIO()), LineProgress)
    quiet = progress(3, quiet=True, stream=io.StringIO())
    assert not isinstance(quiet, LineProgress) and quiet.disable
