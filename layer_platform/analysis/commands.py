"""The CLI's read side: ``status``, ``ranking``, ``export``, ``sql`` and ``snapshot``.

Each command reads the warehouse through ``ReadOnlyWarehouse``, so every one fails the same
way: one line on stderr and the exit code of its ``AnalysisError`` (see ``errors.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from layer_platform.analysis.errors import EXIT_CODES
from layer_platform.analysis.formats import FORMATS, records, render
from layer_platform.analysis.reader import DEFAULT_WAIT_S, ReadOnlyWarehouse
from layer_platform.settings import LayerPaths

NO_RANKING = (
    "no layer ranking yet: the saliency stages of `layer-platform run` rank the layers once an"
    " input mode has a champion classifier"
)
EXIT_HELP = "exit status:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


def _reader(args: argparse.Namespace, paths: LayerPaths) -> ReadOnlyWarehouse:
    return ReadOnlyWarehouse(paths.warehouse, wait_s=args.wait)


def _cmd_status(args: argparse.Namespace, paths: LayerPaths) -> int:
    """summarize the cohort and the warehouse

    Counts per stage, the latest quarantine reasons and incomplete landing folders.
    """
    from layer_platform.warehouse.status import cohort_summary, format_summary

    with _reader(args, paths).lock_errors():
        summary = cohort_summary(paths, wait_s=args.wait)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _cmd_ranking(args: argparse.Namespace, paths: LayerPaths) -> int:
    """print the layer ranking of each input mode from the warehouse (read-only)

    Print layer_ranking: per input mode, each method's layers from rank 1 (the top layer) down,
    with the 'does any layer stand out' verdict and, where method_faithfulness has rows, the
    method's faithfulness on the held-out scans.
    """
    reader = _reader(args, paths)
    ranking = None
    if "layer_ranking" in reader.tables():
        ranking = reader.query(
            "SELECT * FROM layer_ranking ORDER BY input_mode, method, rank, layer"
        )
        if args.method:
            ranking = ranking[ranking["method"].isin(args.method)]
    if args.json:
        print(json.dumps([] if ranking is None else records(ranking), indent=2))
    elif ranking is None or ranking.empty:
        print(NO_RANKING)
    else:
        from layer_platform.statistics.report import format_ranking

        headers = {
            row.input_mode: f"{row.model_name} v{row.model_version}, {row.n_subjects} subjects"
            for row in ranking.drop_duplicates("input_mode").itertuples()
        }
        faithfulness = (
            reader.query("SELECT * FROM method_faithfulness")
            if "method_faithfulness" in reader.tables()
            else None
        )
        print(format_ranking(ranking, headers=headers, faithfulness=faithfulness))
    return 0


def _cmd_export(args: argparse.Namespace, paths: LayerPaths) -> int:
    """write the warehouse as Parquet, or the cohort split for MONAI / nnU-Net (read-only)

    --to: copy each table and view of the DuckDB warehouse to <TO>/<name>.parquet, from one
    consistent read-only connection. TO may be a local folder or an fsspec URL
    (s3://bucket/layer/warehouse, with s3fs installed) for DuckDB over Parquet at scale.
    --datalist: write the cohort split (same folds, same test subjects) as a MONAI
    datalist.json and an nnU-Net dataset.json + splits_final.json into DIR.
    """
    if not (args.to or args.datalist):
        print("layer-platform export: error: give --to, --datalist or both", file=sys.stderr)
        return 2
    reader = _reader(args, paths)
    if args.datalist:  # checked first: nothing is written when the split is missing
        reader.require("cohort_split", "run `layer-platform run --until train_classifiers` first")
    if args.to:
        exported = reader.export_parquet(args.to)
        for name, rows in exported.items():
            print(f"{name:<28}{rows:>10} rows")
        print(f"{len(exported)} tables and views written to {args.to} as <name>.parquet")
    if args.datalist:
        from layer_platform.analysis import datalist as split_files

        rows = reader.query(split_files.SPLIT_WITH_FILES).to_dict("records")
        docs = split_files.write_exports(rows, paths.artifacts / "preprocessed", args.datalist)
        monai, nnunet = docs[split_files.DATALIST], docs[split_files.NNUNET_DATASET]
        print(
            f"MONAI datalist: {monai['numTraining']} training scans, {monai['numTest']} test"
            f" scans -> {args.datalist}/{split_files.DATALIST}"
        )
        print(
            f"nnU-Net: {nnunet['numTraining']} annotated training scans in"
            f" {len(docs[split_files.NNUNET_SPLITS])} folds -> {args.datalist}/"
            f"{split_files.NNUNET_DATASET}, {split_files.NNUNET_SPLITS}"
        )
    return 0


def _cmd_sql(args: argparse.Namespace, paths: LayerPaths) -> int:
    """run a read-only SQL query on the warehouse

    Run SELECT statements (or an EXPLAIN of one) on the warehouse through a read-only
    connection, retrying while a writer holds the file; any other statement is refused.
    Tables: docs/how-to/query-the-warehouse.md.
    """
    sql = sys.stdin.read() if args.query == "-" else args.query
    print(render(_reader(args, paths).query(sql), args.format))
    return 0


def _cmd_snapshot(args: argparse.Namespace, paths: LayerPaths) -> int:
    """copy the warehouse to PATH, to open while the pipeline writes

    Write a consistent copy of the warehouse to PATH (replacing an older copy there). Open the
    copy with DuckDB for as long as you like: it never blocks the pipeline.
    """
    reader = _reader(args, paths)
    copy = reader.snapshot(args.path)
    n_tables = len(ReadOnlyWarehouse(copy).tables())
    print(f"snapshot of {paths.warehouse} ({n_tables} tables and views) written to {copy}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register the read-side commands on the ``layer-platform`` parser."""
    wait = argparse.ArgumentParser(add_help=False)
    wait.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help=f"how long to wait for a writer's lock (default {DEFAULT_WAIT_S:g})",
    )

    def add(func: Callable[[argparse.Namespace, LayerPaths], int]) -> argparse.ArgumentParser:
        """The command ``_cmd_<name>``: its docstring's first line is the summary, the rest
        the description."""
        summary, _, text = (func.__doc__ or "").partition("\n")
        parser = commands.add_parser(
            func.__name__.removeprefix("_cmd_"),
            parents=[wait],
            help=summary,
            description=textwrap.fill(" ".join(text.split()), 88),
            epilog=EXIT_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(func=func)
        return parser

    status = add(_cmd_status)
    status.add_argument("--json", action="store_true", help="print the summary as JSON")

    ranking = add(_cmd_ranking)
    ranking.add_argument(
        "--method", action="append", help="only this method (repeatable); default: all"
    )
    ranking.add_argument("--json", action="store_true", help="print the rows as a JSON list")

    export = add(_cmd_export)
    export.add_argument("--to", help="destination folder or URL for the Parquet files")
    export.add_argument("--datalist", metavar="DIR", help="destination folder for the split files")

    sql = add(_cmd_sql)
    sql.add_argument("query", help="the SQL, or - to read it from stdin")
    sql.add_argument("--format", choices=FORMATS, default="table", help="output format")

    snapshot = add(_cmd_snapshot)
    snapshot.add_argument("path", type=Path, help="where the copy goes (a .duckdb file)")
