"""The ``mlmbias`` command line. Bad input prints one line to stderr and exits 2."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from mlmbias.errors import ConfigError

UINT32_LIMIT = 2**32  # seeds and replication indices are uint32 words of the key


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message}\n")


def _cmd_simulate(args: argparse.Namespace) -> int:
    from mlmbias.scenarios import get_scenario
    from mlmbias.simulate import simulate_condition, to_frame
    from mlmbias.study import parse_assignment

    _check_seed(args.seed)
    if not 0 <= args.rep < UINT32_LIMIT:
        raise ConfigError(f"--rep must be an integer with 0 <= rep < 2**32, got {args.rep}")
    changes = dict(parse_assignment(s) for s in args.set or [])
    for name, option, value in (
        ("n_regions", "--regions", args.regions),
        ("confounding", "--confounding", args.confounding),
    ):
        if name in changes:
            raise ConfigError(f"--set {name}=... repeats {option}; give it once, as {option}")
        if value is not None:
            changes[name] = value
    if args.plugin:
        from mlmbias.plugins import import_plugins, resolve

        import_plugins(resolve(args.plugin, Path.cwd()))
    dgp = get_scenario(args.scenario)().replace(**changes)
    frame = to_frame(simulate_condition(dgp, args.seed, [args.rep]), 0)
    _write_csv(frame, args.out)
    print(f"wrote {len(frame)} rows, {dgp.n_regions} regions of scenario {dgp.name} to {args.out}")
    return 0


def _check_seed(seed: int) -> None:
    if not 0 <= seed < UINT32_LIMIT:
        raise ConfigError(
            f"--seed must be an integer with 0 <= seed < 2**32 = {UINT32_LIMIT}, got {seed}"
        )


def _write_csv(frame, out: str) -> None:
    path = Path(out)
    try:
        frame.to_csv(path, index=False)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def _column_list(text: str, option: str) -> list[str]:
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise ConfigError(f"{option} {text!r} has an empty column name; give NAME[,NAME...]")
    return names


def _cmd_fit(args: argparse.Namespace) -> int:
    import pandas as pd

    from mlmbias.fitting import fit_panel

    _check_seed(args.seed)
    methods = None
    if args.methods is not None:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        if not methods:
            from mlmbias.registry import method_names

            raise ConfigError(
                f"--methods {args.methods!r} names no method; give a comma-separated list of "
                f"{', '.join(method_names())}"
            )
    try:
        df = pd.read_csv(args.file)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"cannot read {args.file}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {args.file}: {exc}") from None
    from mlmbias.study import parse_assignment

    options = dict(parse_assignment(s) for s in args.set or [])
    shared = {k: v for k, v in options.items() if "." not in k}  # METHOD.KEY: fit_panel's
    if shared:
        from mlmbias.bayes.options import check_methods, settings_from_options
        from mlmbias.registry import get_method, method_names

        chosen = methods if methods is not None else method_names("frequentist")
        if not any(get_method(m).kind == "bayes" for m in chosen):
            first = next(s for s in args.set if "." not in s.partition("=")[0])
            raise ConfigError(
                f"--set {first!r} is a setting of the Bayesian methods, and none of "
                f"{', '.join(chosen)} is one; add one to --methods, drop --set, or give "
                "a method's own option as METHOD.KEY=VALUE"
            )
        check_methods(chosen, settings_from_options(shared))
    result = fit_panel(
        df,
        args.group,
        _column_list(args.x, "--x"),
        args.y,
        methods=methods,
        level=args.level,
        seed=args.seed,
        options=options,
        z=_column_list(args.z, "--z") if args.z is not None else None,
    )
    table = result.table
    if args.json:
        records = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in table.to_dict(orient="records")
        ]
        for r in records:
            if "flag_names" in r:
                r["flag_names"] = r["flag_names"].split(",") if r["flag_names"] else []
        print(json.dumps(records, indent=2))
    else:
        shown = table.drop(columns="flag", errors="ignore")
        if "flag_names" in shown:  # names, not bit sums, and last: they are the widest
            names = shown.pop("flag_names").replace("", "-")
            shown = shown.assign(flag_names=names)
        with _pandas_display():
            print(shown.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
        if result.notes:
            print()
            for note in result.notes:
                print(note)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from mlmbias.runner import parse_shard, run_study
    from mlmbias.study import load_study

    study = load_study(args.config).with_overrides(args.set or [])
    shard = parse_shard(args.shard)
    try:
        summary = run_study(study, args.out, force=args.force, shard=shard, quiet=args.quiet)
    except KeyboardInterrupt:
        print(
            "mlmbias run: interrupted; finished batches are saved, run the same command "
            "again to resume",
            file=sys.stderr,
        )
        return 130
    for line in summary.lines():
        print(line)
    return 1 if summary.failures else 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from mlmbias.runner import merge

    result = merge(args.out, args.shards)
    for line in result.lines():
        print(line)
    warning = result.warning()
    if warning is not None:
        print(f"mlmbias merge: warning: {warning}", file=sys.stderr)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from mlmbias.report.document import write_report

    if args.strict:
        from mlmbias.runner import completeness

        check = completeness(args.folder)
        if not check.complete:
            print(
                f"mlmbias report: error: {check.one_line()}; --strict: no report written",
                file=sys.stderr,
            )
            return 1
    figures = Path(args.folder) / "figures" if args.figures is None else Path(args.figures)
    study = _check_report_args(args, figures)
    pair = _pair_draws(study) if args.pair_plot else None
    paths = write_report(
        args.folder,
        figures=figures,
        alpha=args.alpha,
        corr_threshold=args.corr_threshold,
        converged_only=args.converged_only,
        pair_draws=pair,
    )
    print(f"summary: {paths.summary}")
    print(f"report:  {paths.report}")
    print(f"html:    {paths.html}")
    print(f"figures: {len(paths.figures)} in {figures}")
    return 0


def _check_report_args(args: argparse.Namespace, figures: Path) -> dict:
    """The study of the folder, once the options and every output location are
    checked: before the pair plot's draws, which take a while, and any writing."""
    from mlmbias import store
    from mlmbias.checks import check_level
    from mlmbias.report.document import check_outputs

    folder = args.folder
    manifest = store.study_manifest(Path(folder))
    check_level(args.alpha, "alpha")
    if not 0 <= args.corr_threshold <= 1:
        raise ConfigError(f"'corr_threshold' must lie in [0, 1], got {args.corr_threshold}")
    check_outputs(Path(folder), figures)
    return manifest["study"]


def _pair_draws(study: dict):
    """Draws for the seed's pair plot, on the dataset the report's data plot shows."""
    from mlmbias.report.document import seed_dataset
    from mlmbias.report.posterior import pair_draws

    df, _ = seed_dataset(study)
    return pair_draws(df, seed=int(study.get("seed", 0)))


def _pandas_display():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", None)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mlmbias", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("simulate", help="write one simulated replication as CSV")
    p.add_argument("--regions", type=int, required=True, help="number of regions R")
    p.add_argument("--seed", type=int, required=True, help="study seed")
    p.add_argument("--rep", type=int, default=0, help="replication index (default 0)")
    p.add_argument(
        "--confounding", type=float, help="the seed's slope of regional ad spend on competition"
    )
    p.add_argument("--scenario", default="seed", help="scenario to simulate (default: seed)")
    p.add_argument(
        "--plugin",
        action="append",
        metavar="MODULE",
        help="import a module or .py file that registers scenarios first",
    )
    p.add_argument(
        "--set", action="append", metavar="FIELD=VALUE", help="set a field of the scenario"
    )
    p.add_argument("--out", required=True, help="CSV file to write")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("fit", help="fit estimators to a panel in a CSV file")
    p.add_argument("file", help="CSV file, one row per observation")
    p.add_argument("--group", default="region", help="group column (default: region)")
    p.add_argument(
        "--x",
        default="ad_spend",
        help="within-varying covariate column(s), comma-separated (default: ad_spend)",
    )
    p.add_argument(
        "--z",
        help="group-level covariate column(s), each constant within a group, comma-separated",
    )
    p.add_argument("--y", default="profit", help="outcome column (default: profit)")
    p.add_argument("--methods", help="comma-separated methods (default: all frequentist)")
    p.add_argument("--level", type=float, default=0.94, help="interval level (default 0.94)")
    p.add_argument("--seed", type=int, default=0, help="seed for the Bayesian samplers")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a [bayes] setting for the Bayesian methods (chains=4, draws=2000, ...), "
        "or METHOD.KEY=VALUE for one method's own option (hausman-wild.draws=199)",
    )
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("run", help="run a study: every condition, method and replication")
    p.add_argument("config", help="study TOML file (e.g. configs/default.toml)")
    p.add_argument("--out", required=True, help="study folder (created; resumed if it exists)")
    p.add_argument(
        "--set",
        action="append",
        metavar="FIELD=VALUE",
        help="override a study field, a scenario field, or table.field",
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="run the K-th of N shares of the work "
        "(default: from a SLURM, AWS Batch or Kubernetes Indexed array job, else all)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace a different study already in --out"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "report", help="performance measures, tables, figures, report.md and report.html"
    )
    p.add_argument("folder", help="study folder written by `mlmbias run`")
    p.add_argument(
        "--figures",
        help="folder for the figures, created if missing (default: FOLDER/figures)",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="test level (default 0.05)")
    p.add_argument(
        "--corr-threshold",
        type=float,
        default=0.5,
        help="|corr(beta, sigma_a)| above which the seed's red flag is raised",
    )
    p.add_argument(
        "--converged-only", action="store_true", help="measures on converged replications only"
    )
    p.add_argument(
        "--no-pair-plot",
        dest="pair_plot",
        action="store_false",
        help="skip the posterior pair plot (it fits two Bayesian models)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 and write nothing if a batch is missing, failed or unreadable",
    )
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("merge", help="combine the folders of a sharded study")
    p.add_argument("out", help="empty folder for the merged study")
    p.add_argument("shards", nargs="+", help="shard folders")
    p.set_defaults(func=_cmd_merge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("fit", "run", "report"):
        from mlmbias.cache import enable_compilation_cache

        enable_compilation_cache()
    try:
        return args.func(args)
    except ConfigError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message holds
    except OSError as exc:  # a file or folder the command could not use
        where = f": {exc.filename}" if exc.filename else ""
        message = f"{exc.strerror or exc}{where}"
    print(f"mlmbias {args.command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
