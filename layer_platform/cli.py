"""``layer-platform``: simulate a cohort, run the platform, show its status, open the UI."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from layer_platform import package_version
from layer_platform.analysis.commands import EXIT_HELP, add_commands
from layer_platform.analysis.errors import AnalysisError
from layer_platform.classification.modes import INPUT_MODES
from layer_platform.orchestration.stages import STAGES
from layer_platform.settings import PATH_VARIABLES, LayerPaths
from layer_platform.simulation.config import SimulationConfig
from layer_platform.timestamps import utc_now
from layer_platform.umask import apply_umask

#: ``simulate``'s scenario options (docs/explanation/simulator-scenarios.md); off by default.
SCENARIO_HELP: dict[str, str] = {
    "bmode_driver2": "a second layer with the same B-mode effect, or 'none'",
    "bmode_driver_kind": "'level' (echo level) or 'texture' (mottle contrast, same mean level)",
    "bmode_spill_mm": "B-mode effect fades as exp(-d/MM) beyond the driver layers (0: confined)",
    "swe_spill_mm": "SWE effect fades as exp(-d/MM) beyond the driver layer (0: confined)",
    "thickness_effect": "relative thickening of the B-mode driver layers at severity 1",
    "unilateral_fraction": "share of MP subjects in pain on one side only",
    "site_confounding": "share of subjects whose site follows the label (no tissue change)",
    "fat_confounding": "relative thickening of both fat layers in MP subjects (body size)",
    "swe_coverage_confounding": "shifts SWE coverage towards MP scans (1: MP only)",
}
ENV_HELP = "\n".join(
    ["environment:", "  LAYER_HOME  root of all state (default ./.layer_home)"]
    + [
        f"  {var:<20}{text} (default $LAYER_HOME/{default})"
        for var, (text, default) in PATH_VARIABLES.items()
    ]
)


def _cmd_simulate(args: argparse.Namespace, paths: LayerPaths) -> int:
    from layer_platform.labels import Layer
    from layer_platform.simulation import arrive, simulate_cohort

    paths.ensure()
    if args.arrive:
        new = arrive(paths.landing, args.arrive, unlabelled=args.unlabelled)
        print(f"{len(new)} new scans landed in {paths.landing}: {', '.join(new)}")
        return 0

    def driver(name: str) -> Layer | None:
        return None if name.lower() == "none" else Layer.from_key(name)

    config = SimulationConfig(
        n_subjects=args.subjects,
        seed=args.seed,
        bmode_driver=driver(args.bmode_driver),
        swe_driver=driver(args.swe_driver),
        annotated_fraction=args.annotated_fraction,
        bmode_effect_db=args.bmode_effect_db,
        swe_effect=args.swe_effect,
        **{name: getattr(args, name) for name in SCENARIO_HELP},
    )
    truth = simulate_cohort(config, paths.landing, progress=True, overwrite=args.overwrite)
    n_scans = len(truth.scans)
    print(f"simulated {config.n_subjects} subjects, {n_scans} scans into {paths.landing}")
    return 0


def _cmd_run(args: argparse.Namespace, paths: LayerPaths) -> int:
    from layer_platform.defs.definitions import build_definitions
    from layer_platform.orchestration.pipeline import run_platform
    from layer_platform.warehouse.status import quarantined_since

    if args.workers < 1 or (args.in_process and args.workers > 1):
        print(
            "layer-platform run: error: --workers takes N >= 1, and 1 with --in-process",
            file=sys.stderr,
        )
        return 2
    paths.ensure()
    started = utc_now()
    defs = build_definitions(paths=paths) if args.in_process else None
    report = run_platform(
        paths, max_batch=args.batch, until=args.until, workers=args.workers, defs=defs
    )
    for stage in report:
        status = "ok" if not stage.failed else f"FAILED runs: {', '.join(stage.failed)}"
        print(
            f"{stage.job:<24} runs={len(stage.runs):<3} partitions={stage.partitions:<5} {status}"
        )
    for line in quarantined_since(paths, started):  # bad scans do not fail the run
        print(line)
    return 1 if any(stage.failed for stage in report) else 0


def _cmd_sanity(args: argparse.Namespace, paths: LayerPaths) -> int:
    from layer_platform.orchestration.sanity import outcome_lines, run_sanity

    try:
        outcome = run_sanity(paths, modes=args.modes, methods=args.methods, seed=args.seed)
    except ValueError as exc:
        print(f"layer-platform sanity: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(outcome_lines(outcome)))
    return 0


def _cmd_validate(args: argparse.Namespace, paths: LayerPaths) -> int:
    import platform

    from layer_platform.orchestration.validation import run_matrix
    from layer_platform.validation import load_matrix, rates, render

    try:
        matrix = load_matrix(args.matrix)
        out = args.out or paths.home / "validation" / matrix.name
        outcome = run_matrix(
            out, matrix, only=args.only, reread=args.reread, stored_only=args.stored
        )
    except (ValueError, OSError) as exc:
        print(f"layer-platform validate: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{matrix.name}: ran {len(outcome.ran)}, already stored {len(outcome.skipped)},"
        + (f" reread {len(outcome.reread)}," if args.reread else "")
        + (f" not run {len(outcome.pending)}," if args.stored else "")
        + f" failed {len(outcome.failed)}; results in {out}"
    )
    for name, reason in outcome.failed.items():
        print(f"  FAILED {name}: {reason}")
    if not outcome.rows.empty:
        print(rates(outcome.rows).to_string(index=False))
    if args.report and not outcome.rows.empty:
        flags = "".join(f" --{flag}" for flag in ("reread", "stored") if getattr(args, flag))
        if args.only:
            flags += f" --only {' '.join(args.only)}"
        command = f"layer-platform validate {args.matrix} --report {args.report}{flags}"
        machine = f"{os.cpu_count()} CPU cores ({platform.machine()})"
        args.report.write_text(render(matrix, outcome.rows, command=command, machine=machine))
        print(f"wrote {args.report}")
    return 1 if outcome.failed else 0


def _cmd_dev(args: argparse.Namespace, paths: LayerPaths) -> int:
    from layer_platform.orchestration.runner import prepare_dagster_home

    paths.ensure()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(prepare_dagster_home(paths)),
        "LAYER_HOME": str(paths.home),
    }
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(workspace),
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={env['DAGSTER_HOME']})")
    # `dagster dev` ignores SIGINT when started from a background shell: restore the default.
    process = subprocess.Popen(
        command, env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layer-platform",
        description="LAYER: which tissue layer drives a model's prediction of myofascial pain?",
        epilog=f"{ENV_HELP}\n\n{EXIT_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser(
        "simulate",
        help="write a simulated cohort (planted tissue drivers) into the landing zone",
        description="Write a realistic simulated cohort into $LAYER_HOME/landing, with the"
        " ground truth beside it; or, with --arrive N, drop N more scans into it.",
    )
    simulate.add_argument(
        "--subjects", type=int, default=40, help="number of subjects (2 scans each)"
    )
    simulate.add_argument("--seed", type=int, default=7, help="random seed (deterministic output)")
    simulate.add_argument(
        "--bmode-driver",
        default="deep_fascia",
        help="layer carrying the pain effect in B-mode, or 'none'",
    )
    simulate.add_argument(
        "--swe-driver", default="muscle", help="layer carrying the pain effect in SWE, or 'none'"
    )
    simulate.add_argument(
        "--bmode-effect-db",
        type=float,
        default=SimulationConfig.bmode_effect_db,
        help=(
            "B-mode driver: dB brighter at severity 1 "
            f"(default {SimulationConfig.bmode_effect_db:g})"
        ),
    )
    simulate.add_argument(
        "--swe-effect",
        type=float,
        default=SimulationConfig.swe_effect,
        help=(
            "SWE driver: relative stiffness increase at severity 1 "
            f"(default {SimulationConfig.swe_effect:g})"
        ),
    )
    simulate.add_argument(
        "--annotated-fraction",
        type=float,
        default=SimulationConfig.annotated_fraction,
        help=(
            "fraction of scans shipped with reference layers; the others are explained in the"
            f" platform's own segmentation (default {SimulationConfig.annotated_fraction:g})"
        ),
    )
    for name, text in SCENARIO_HELP.items():
        default = getattr(SimulationConfig, name)
        simulate.add_argument(
            f"--{name.replace('_', '-')}",
            type=str if isinstance(default, str) or default is None else float,
            default="none" if default is None else default,
            help=f"{text} (default {'none' if default is None else default})",
        )
    simulate.add_argument(
        "--arrive",
        type=int,
        default=0,
        metavar="N",
        help="add N new scans to an existing simulated landing zone",
    )
    simulate.add_argument(
        "--unlabelled",
        action="store_true",
        help="with --arrive: scans to explain (no label, no reference layers), which retrain"
        " no model",
    )
    simulate.add_argument(
        "--overwrite", action="store_true", help="replace an existing simulated landing zone"
    )
    simulate.set_defaults(func=_cmd_simulate)

    run = commands.add_parser(
        "run",
        help="register landed scans and materialize every asset through Dagster",
        description="Register every complete scan in the landing zone and materialize all assets"
        " for them through the Dagster instance under LAYER_HOME: its run launcher (from"
        " dagster.yaml) starts each run. Bad scans are quarantined; exits non-zero only if the"
        " platform itself failed.",
    )
    run.add_argument("--batch", type=int, default=500, help="most scans per Dagster run")
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="split each stage's scans into N ranges, run at once (default 1)",
    )
    run.add_argument(
        "--in-process",
        action="store_true",
        help="execute the runs in this process, bypassing the run launcher (debugging)",
    )
    run.add_argument("--until", choices=STAGES, help="stop after this stage")
    run.set_defaults(func=_cmd_run)

    sanity = commands.add_parser(
        "sanity",
        help="data-randomization check: retrain each champion on permuted labels and ask"
        " whether a layer still stands out",
        description="For each mode's champion: permute which subjects are MP (within each"
        " development fold), retrain with the champion's folds and settings, explain every"
        " development scan out of fold as the reported run did, and test whether a layer stands"
        " out. Stored per champion version and seed (data_randomization_checks); the next"
        " summary reads it into the verdicts. A stored result is reused, not retrained.",
    )
    sanity.add_argument(
        "--modes",
        nargs="+",
        choices=INPUT_MODES,
        default=list(INPUT_MODES),
        metavar="MODE",
        help=f"input modes whose champion is checked (default: all of {', '.join(INPUT_MODES)})",
    )
    sanity.add_argument(
        "--methods",
        nargs="+",
        metavar="METHOD",
        help="methods checked together (default: those the model-randomization check runs)",
    )
    sanity.add_argument("--seed", type=int, default=0, help="permutation seed (default 0)")
    sanity.set_defaults(func=_cmd_sanity)

    validate = commands.add_parser(
        "validate",
        help="run a validation matrix: simulated cohorts with planted drivers through every"
        " asset, and whether the platform found them",
        description="For each scenario of MATRIX (a TOML file): simulate the cohort, take it"
        " through every asset in its own LAYER_HOME under --out, and store what the platform"
        " concluded against what was planted (validation_matrix). Resumable: a cohort already"
        " stored with the same settings is not run again.",
    )
    validate.add_argument("matrix", type=Path, help="the matrix file (TOML)")
    validate.add_argument(
        "--out", type=Path, help="output folder (default $LAYER_HOME/validation/MATRIX_NAME)"
    )
    validate.add_argument("--only", nargs="+", default=[], metavar="NAME", help="these cohorts")
    validate.add_argument(
        "--report", type=Path, help="also write the generated results page (Markdown) here"
    )
    validate.add_argument(
        "--reread",
        action="store_true",
        help="read the stored cohorts' outcomes again from their homes, keeping the time each"
        " run took (after a fix in how outcomes are read; one reference matching only)",
    )
    validate.add_argument(
        "--stored",
        action="store_true",
        help="run no cohort: report the stored ones (a matrix stopped part-way; the page says"
        " which cohorts have not run yet)",
    )
    validate.set_defaults(func=_cmd_validate)

    add_commands(commands)

    dev = commands.add_parser("dev", help="open the Dagster UI (dagster dev) on this instance")
    dev.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(func=_cmd_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    apply_umask()
    # MLflow draws a progress bar for every model it loads (one per mode and run); the
    # platform's own bars and logs already say what a run is doing.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args, LayerPaths.from_env()))
    except AnalysisError as exc:  # an expected state of the warehouse: one line, no traceback
        print(f"layer-platform {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `... | head` closed the pipe: stop quietly, as `cat` would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
