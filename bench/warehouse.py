"""Benchmark 5: analyst queries over a synthetic ``layer_saliency`` in a DuckDB file.

Per cohort size (4,000 scans = 360k rows; 100,000 scans = 9M rows at ``default``), a DuckDB
file with the platform's schema (``Warehouse.ensure_schema``) is filled with one row per scan,
input mode, method and layer, then three queries are timed through ``Warehouse.query`` (a fresh
read-only connection per query, as ``layer-platform ranking`` and analysts use it):

* **``layer_ranking`` table**: ``layer-platform ranking``'s query of the table the summary
  refresh precomputes (written here by the same aggregation as the next query, timed apart);
  baseline: that aggregation at query time;
* **ranking over the rows**: per mode, method and layer, scans averaged per subject, then the
  cohort mean and its rank (``layer_ranking.score``: ``mean_saliency``, ``ablation_delta`` for
  ablation), computed from ``layer_saliency`` at query time;
* **per-subject trajectory**: one subject's scans, one column per layer (the SQL cookbook's
  query for one subject, bound as a parameter).

Baseline of the last two: the same computation in pandas on the frame already loaded in memory
(loading not counted). Targets: < 100 ms up to 360k rows, < 2 s at 9M rows. Latencies are
medians.

The first and last query are then timed again **while a writer inserts**: another process
replaces one scan's rows of ``layer_saliency`` (90 rows, one ``Warehouse.replace`` transaction,
as the saliency asset writes) every ``WRITER_PAUSE_S``, far more often than the pipeline does.
DuckDB lets one process hold the file at a time, so a reader waits out the writer's open
transaction (``Warehouse.connect`` retries with back-off); the row reports that latency against
the same query with no writer, measured in the same run.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core import Context, Result, Target, Timing, fmt_s, interleaved, measured, time_call
from layer_platform.attribution import PLATFORM_METHODS
from layer_platform.classification.modes import INPUT_MODES
from layer_platform.labels import TISSUE_LAYERS
from layer_platform.warehouse.store import Warehouse

BENCHMARK = "warehouse"
#: Latency targets: up to a million rows, and beyond.
SMALL_TARGET = Target("value", "<", 100.0)
LARGE_TARGET = Target("value", "<", 2000.0)
SMALL_ROWS = 1_000_000
#: pandas repeats at most this often (it takes seconds per call on millions of rows).
PANDAS_REPEATS = 3
#: Pause of the concurrent writer between its transactions (the saliency stage writes about
#: once per scan-second at most, in fewer, larger transactions).
WRITER_PAUSE_S = 0.2
#: Distinct scans the writer cycles through, so the table keeps its size.
WRITER_SCANS = 20
#: Reader rounds continue until the writer has committed this often during them (or the cap).
MIN_COMMITS = 10
MAX_ROUNDS = 500
#: An analyst's (or a dashboard's) pause between queries. With none, back-to-back readers hold
#: the file so much of the time that the writer's retries starve (measured: seconds a commit).
READER_PAUSE_S = 0.1

GENERATE = """
INSERT INTO layer_saliency BY NAME
SELECT printf('S%06d-%s', s // 2 + 1, CASE WHEN s % 2 = 0 THEN 'L' ELSE 'R' END) AS scan_id,
       printf('S%06d', s // 2 + 1) AS subject_id,
       CASE WHEN (s // 2) % 2 = 0 THEN 'MP' ELSE 'control' END AS label,
       m.input_mode,
       me.method,
       'layer-classifier-' || m.input_mode AS model_name,
       '1' AS model_version,
       l.layer,
       l.layer_index,
       2000 + hash(s, l.layer_index) % 8000 AS n_voxels,
       (2000 + hash(s, l.layer_index) % 8000) / 36000.0 AS volume_fraction,
       CASE WHEN me.method <> 'layer_ablation' THEN u.u END AS mean_saliency,
       CASE WHEN me.method <> 'layer_ablation' THEN u.u / 3 END AS saliency_share,
       CASE WHEN me.method <> 'layer_ablation' THEN u.u * 2 END AS enrichment,
       CASE WHEN me.method = 'layer_ablation' THEN u.u - 0.5 END AS ablation_delta,
       CASE WHEN s % 5 < 2 THEN 'reference' ELSE 'model' END AS segmentation_source,
       TIMESTAMP '2026-01-01 00:00:00' AS computed_at,
       CASE WHEN s % 5 = 0 THEN 'held_out' ELSE 'out_of_fold' END AS explained_by,
       repeat('0', 64) AS reference_sha256
FROM range(?) r(s)
CROSS JOIN (SELECT unnest(?) AS input_mode) m
CROSS JOIN (SELECT unnest(?) AS method) me
CROSS JOIN (SELECT unnest(?) AS layer, unnest(?) AS layer_index) l
CROSS JOIN LATERAL (
    SELECT (hash(s, m.input_mode, me.method, l.layer) % 1000003) / 1000003.0 AS u
) u
"""

RANKING = """
WITH per_subject AS (
    SELECT input_mode, method, layer, subject_id,
           avg(CASE WHEN method = 'layer_ablation' THEN ablation_delta
                    ELSE mean_saliency END) AS score
    FROM layer_saliency
    GROUP BY input_mode, method, layer, subject_id
)
SELECT input_mode, method, layer, avg(score) AS score, count(*) AS n_subjects,
       rank() OVER (PARTITION BY input_mode, method ORDER BY avg(score) DESC) AS rank
FROM per_subject
GROUP BY input_mode, method, layer
ORDER BY input_mode, method, rank, layer
"""

SUBJECT = """
SELECT scan_id, label,
       max(mean_saliency) FILTER (WHERE layer = 'dermis') AS dermis,
       max(mean_saliency) FILTER (WHERE layer = 'superficial_fat') AS superficial_fat,
       max(mean_saliency) FILTER (WHERE layer = 'superficial_fascia') AS superficial_fascia,
       max(mean_saliency) FILTER (WHERE layer = 'deep_fat') AS deep_fat,
       max(mean_saliency) FILTER (WHERE layer = 'deep_fascia') AS deep_fascia,
       max(mean_saliency) FILTER (WHERE layer = 'muscle') AS muscle
FROM layer_saliency
WHERE subject_id = ? AND input_mode = ? AND method = ?
GROUP BY scan_id, label
ORDER BY scan_id
"""

FRAME = """
SELECT scan_id, subject_id, label, input_mode, method, layer, mean_saliency, ablation_delta
FROM layer_saliency
"""

#: What the summary refresh precomputes, in the platform's ``layer_ranking`` table (the
#: platform adds bootstrap CIs and the verdict in Python; the read below does not see how).
PRECOMPUTE = f"""
INSERT INTO layer_ranking BY NAME
SELECT input_mode, method, method = 'integrated_gradients' AS is_default_method, layer, rank,
       score, NULL AS ci_low, NULL AS ci_high, n_subjects, 'all' AS subgroup,
       false AS stands_out, 'no layer stands out' AS verdict,
       'layer-classifier-' || input_mode AS model_name, '1' AS model_version,
       TIMESTAMP '2026-01-01 00:00:00' AS computed_at
FROM ({RANKING})
"""

#: ``layer-platform ranking``'s query (``analysis/commands.py``): the precomputed table.
RANKING_TABLE = "SELECT * FROM layer_ranking ORDER BY input_mode, method, rank, layer"


def pandas_ranking(frame: pd.DataFrame) -> pd.DataFrame:
    """``RANKING`` in pandas."""
    score = frame["mean_saliency"].where(
        frame["method"] != "layer_ablation", frame["ablation_delta"]
    )
    per_subject = (
        frame.assign(score=score)
        .groupby(["input_mode", "method", "layer", "subject_id"], sort=False)["score"]
        .mean()
    )
    table = (
        per_subject.groupby(level=["input_mode", "method", "layer"])
        .agg(score="mean", n_subjects="size")
        .reset_index()
    )
    table["rank"] = (
        table.groupby(["input_mode", "method"])["score"].rank(ascending=False, method="min")
    ).astype(int)
    return table.sort_values(["input_mode", "method", "rank", "layer"], ignore_index=True)


def pandas_subject(frame: pd.DataFrame, subject: str, mode: str, method: str) -> pd.DataFrame:
    """``SUBJECT`` in pandas."""
    rows = frame[
        (frame["subject_id"] == subject)
        & (frame["input_mode"] == mode)
        & (frame["method"] == method)
    ]
    table = rows.pivot_table(
        index=["scan_id", "label"], columns="layer", values="mean_saliency", aggfunc="max"
    )
    return table[[layer.key for layer in TISSUE_LAYERS]].reset_index()


def rows_label(n_rows: int) -> str:
    if n_rows >= 1_000_000:
        return f"{n_rows / 1e6:g}M_rows"
    return f"{n_rows / 1e3:g}k_rows"


def build(path: os.PathLike, n_scans: int) -> Warehouse:
    """A warehouse file whose ``layer_saliency`` holds ``n_scans`` synthetic scans."""
    warehouse = Warehouse(path)
    warehouse.ensure_schema()
    layers = [layer.key for layer in TISSUE_LAYERS]
    with warehouse.connect() as con:
        con.execute(
            GENERATE,
            [
                n_scans,
                list(INPUT_MODES),
                list(PLATFORM_METHODS),
                layers,
                [int(layer) for layer in TISSUE_LAYERS],
            ],
        )
    return warehouse


def run(ctx: Context) -> list[Result]:
    results: list[Result] = []
    for n_scans in ctx.scale.warehouse_scans:
        results += _run_size(ctx, n_scans)
    return results


def _run_size(ctx: Context, n_scans: int) -> list[Result]:
    n_rows = n_scans * len(INPUT_MODES) * len(PLATFORM_METHODS) * len(TISSUE_LAYERS)
    label = rows_label(n_rows)
    ctx.log(f"  warehouse with {n_scans:,} scans ({n_rows:,} rows)")
    path = ctx.work_dir / f"warehouse_{n_scans}.duckdb"
    started = time.perf_counter()
    warehouse = build(path, n_scans)
    generate_s = time.perf_counter() - started
    started = time.perf_counter()
    with warehouse.connect() as con:
        con.execute(PRECOMPUTE)
    precompute_s = time.perf_counter() - started
    size_mb = path.stat().st_size / 1e6
    subject = f"S{n_scans // 4 + 1:06d}"
    subject_params = [subject, "bmode", "integrated_gradients"]

    def connect_only() -> None:
        with warehouse.connect(read_only=True):
            pass

    duck = interleaved(
        {
            "table": lambda: warehouse.query(RANKING_TABLE),
            "ranking": lambda: warehouse.query(RANKING),
            "subject": lambda: warehouse.query(SUBJECT, subject_params),
            "connect": connect_only,
        },
        ctx.scale.warehouse_repeats,
    )
    started = time.perf_counter()
    frame = warehouse.query(FRAME)
    load_s = time.perf_counter() - started
    frame_mb = frame.memory_usage(deep=True).sum() / 1e6
    pandas_calls: dict[str, Callable[[], object]] = {
        "ranking": lambda: pandas_ranking(frame),
        "subject": lambda: pandas_subject(frame, *subject_params),
    }
    panda = interleaved(pandas_calls, min(PANDAS_REPEATS, ctx.scale.warehouse_repeats))
    _check_agreement(warehouse, frame, subject_params)

    target = SMALL_TARGET if n_rows <= SMALL_ROWS else LARGE_TARGET
    common = (
        f"{n_rows:,} rows ({n_scans:,} scans x 3 modes x 5 methods x 6 layers), DuckDB file "
        f"{size_mb:.0f} MB generated in {generate_s:.1f} s; each query through "
        f"Warehouse.query (opens a read-only connection: {fmt_s(duck['connect'].median)} of it), "
        "with no writer at work (under writers: docs/how-to/query-the-warehouse.md, "
        "'Querying the warehouse while the pipeline runs')"
    )
    vs_pandas = (
        f"pandas baseline on the frame already in memory ({frame_mb:.0f} MB, loaded in "
        f"{load_s:.1f} s, not counted)"
    )
    subject_what = (
        f"one subject's scans ({subject_params[0]}, B-mode, integrated_gradients), one column "
        "per layer (the SQL cookbook's trajectory query)"
    )
    rows = [
        _row(
            ctx, label, "layer_ranking_table", duck["table"], duck["ranking"], target,
            "baseline / value (speed-up of reading the precomputed table over aggregating the "
            "rows in DuckDB)",
            f"layer-platform ranking's query: the precomputed layer_ranking table (90 rows), "
            f"which the summary refresh writes once per refresh (the same aggregation as "
            f"ranking_over_rows took {precompute_s:.2f} s to write it here). {common}",
            warehouse, RANKING_TABLE, [],
        ),
        _row(
            ctx, label, "ranking_over_rows", duck["ranking"], panda["ranking"], target,
            "baseline / value (speed-up of DuckDB over pandas)",
            f"the ranking recomputed from layer_saliency at query time: per mode, method and "
            f"layer, subject means, cohort mean and rank. {common}. {vs_pandas}",
            warehouse, RANKING, [],
        ),
        _row(
            ctx, label, "subject_trajectory", duck["subject"], panda["subject"], target,
            "baseline / value (speed-up of DuckDB over pandas)",
            f"{subject_what}. {common}. {vs_pandas}",
            warehouse, SUBJECT, subject_params,
        ),
    ]  # fmt: skip
    rows += _under_writer(ctx, warehouse, label, target, duck, subject_params)
    path.unlink()
    return rows


def _write_continuously(
    path: str, template: pd.DataFrame, stop: Event, commits: Synchronized, busy_s: Synchronized
) -> None:
    """The concurrent writer: replace one scan's rows per transaction until ``stop``."""
    warehouse = Warehouse(Path(path))
    while not stop.is_set():
        scan = f"W{commits.value % WRITER_SCANS:06d}-L"
        started = time.perf_counter()
        warehouse.replace(
            "layer_saliency", template.assign(scan_id=scan), key="scan_id", keys=[scan]
        )
        busy_s.value += time.perf_counter() - started
        commits.value += 1
        stop.wait(WRITER_PAUSE_S)


def _under_writer(
    ctx: Context,
    warehouse: Warehouse,
    label: str,
    target: Target,
    quiet: dict[str, Timing],
    subject_params: list[str],
) -> list[Result]:
    """The table and trajectory queries again while another process keeps writing."""
    template = warehouse.query(
        "SELECT * FROM layer_saliency WHERE scan_id = ?", [f"{subject_params[0]}-L"]
    )
    spawn = mp.get_context("spawn")
    stop, commits, busy_s = spawn.Event(), spawn.Value("i", 0), spawn.Value("d", 0.0)
    writer = spawn.Process(
        target=_write_continuously,
        args=(str(warehouse.path), template, stop, commits, busy_s),
        daemon=True,
    )
    writer.start()
    try:
        deadline = time.monotonic() + 120
        while commits.value < 2 and writer.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if commits.value < 2:
            raise RuntimeError("the concurrent writer never committed: no contention measured")
        calls: dict[str, Callable[[], object]] = {
            "table": lambda: warehouse.query(RANKING_TABLE),
            "subject": lambda: warehouse.query(SUBJECT, subject_params),
        }
        samples: dict[str, list[float]] = {key: [] for key in calls}
        first = commits.value
        rounds = 0
        while rounds < MAX_ROUNDS and (
            rounds < ctx.scale.warehouse_repeats or commits.value - first < MIN_COMMITS
        ):
            for key, call in calls.items():
                samples[key].append(time_call(call))
                time.sleep(READER_PAUSE_S)
            rounds += 1
        loaded = {key: Timing(tuple(values)) for key, values in samples.items()}
        during = commits.value - first
    finally:
        stop.set()
        writer.join(timeout=60)
    per_commit = busy_s.value / max(commits.value, 1)
    writer_notes = (
        f"while another process committed {during} replace transactions of one scan's 90 rows "
        f"(one every {WRITER_PAUSE_S:g} s; a commit, lock waits included, took "
        f"{fmt_s(per_commit)} on average), the reader pausing {READER_PAUSE_S:g} s between "
        "queries; each side waits out the other's lock (Warehouse.connect retries with "
        "back-off); baseline: the same query in this run with no writer"
    )
    return [
        measured(
            BENCHMARK,
            f"{BENCHMARK}/{label}/{title}_under_writer",
            value=loaded[key].median * 1e3,
            unit="ms",
            baseline=quiet[key].median * 1e3,
            ratio=loaded[key].median / quiet[key].median,
            ratio_means="value / baseline (slow-down caused by the concurrent writer)",
            target=target,
            notes=f"{what}, {writer_notes}. {len(loaded[key].samples)} rounds: fastest "
            f"{fmt_s(loaded[key].best)}, slowest {fmt_s(max(loaded[key].samples))}.",
        )
        for key, title, what in (
            ("table", "layer_ranking_table", "layer-platform ranking's query"),
            ("subject", "subject_trajectory", "one subject's trajectory (SQL cookbook)"),
        )
    ]


def _row(
    ctx: Context,
    label: str,
    title: str,
    duck: Timing,
    baseline: Timing,
    target: Target,
    ratio_means: str,
    notes: str,
    warehouse: Warehouse,
    sql: str,
    params: list[str],
) -> Result:
    row = measured(
        BENCHMARK,
        f"{BENCHMARK}/{label}/{title}",
        value=duck.median * 1e3,
        unit="ms",
        baseline=baseline.median * 1e3,
        ratio=baseline.median / duck.median,
        ratio_means=ratio_means,
        target=target,
        notes=f"{notes}. DuckDB fastest {fmt_s(duck.best)}.",
    )
    if not row.met and target.met(duck.best * 1e3, None):
        row.notes += (
            f" Why: the fastest of {len(duck.samples)} rounds took {fmt_s(duck.best)}, within "
            "the target; the median carries the load of other processes on this shared CPU "
            "(see the load average), and the query plan is in the profile."
        )
    if not row.met:
        path = ctx.profile_path(f"warehouse_{label}_{title}.txt")
        with warehouse.connect(read_only=True) as con:
            plan = con.execute("EXPLAIN ANALYZE " + sql, params).fetchall()
        path.write_text(
            f"# DuckDB EXPLAIN ANALYZE: {title} over {label}\n\n```\n"
            + "\n".join(str(line[1]) for line in plan)
            + "\n```\n"
        )
        row.profile = ctx.relative(path)
    return row


def _check_agreement(warehouse: Warehouse, frame: pd.DataFrame, subject_params: list[str]) -> None:
    """DuckDB and pandas must return the same tables, or the comparison is void."""
    duck = warehouse.query(RANKING)
    panda = pandas_ranking(frame)
    same_ranking = (
        len(duck) == len(panda)
        and (duck["layer"].to_numpy() == panda["layer"].to_numpy()).all()
        and (duck["rank"].to_numpy() == panda["rank"].to_numpy()).all()
        and np.allclose(duck["score"].to_numpy(float), panda["score"].to_numpy(float))
    )
    duck_subject = warehouse.query(SUBJECT, subject_params)
    panda_subject = pandas_subject(frame, *subject_params)
    same_subject = duck_subject.shape == panda_subject.shape and np.allclose(
        duck_subject.iloc[:, 2:].to_numpy(float), panda_subject.iloc[:, 2:].to_numpy(float)
    )
    if not (same_ranking and same_subject):
        raise RuntimeError("DuckDB and pandas answers differ: the comparison would be void")
