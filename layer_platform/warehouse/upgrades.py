"""Upgrades of tables created by older versions: columns added since, so an existing warehouse
keeps its rows and gains the contract's new columns (``schema.create_statements``)."""

from __future__ import annotations

#: Statements that bring a table created by an older version up to its contract in
#: ``schema.TABLES`` (run after each ``CREATE TABLE IF NOT EXISTS``; each is idempotent).
UPGRADES: dict[str, tuple[str, ...]] = {
    # Verdict gates (#16): how often a layer ranks first, the Holm-adjusted p of a verdict,
    # both means of the paper's comparison, and how the randomization check ran.
    "layer_ranking": (
        "ALTER TABLE layer_ranking ADD COLUMN IF NOT EXISTS p_rank1 DOUBLE",
        # (#17) whether the classifier's skill failed to hold within sites, and whether the
        # verdict survives every layer eroded and dilated by one voxel.
        "ALTER TABLE layer_ranking ADD COLUMN IF NOT EXISTS confounded_by_site BOOLEAN",
        "ALTER TABLE layer_ranking ADD COLUMN IF NOT EXISTS boundary_sensitivity VARCHAR",
        # ... and which layers differ in size between MP and control subjects.
        "ALTER TABLE layer_ranking ADD COLUMN IF NOT EXISTS layer_size_differs VARCHAR",
    ),
    "layer_friedman": ("ALTER TABLE layer_friedman ADD COLUMN IF NOT EXISTS holm_p DOUBLE",),
    "layer_comparison": (
        "ALTER TABLE layer_comparison ADD COLUMN IF NOT EXISTS non_muscle_mean DOUBLE",
        "ALTER TABLE layer_comparison ADD COLUMN IF NOT EXISTS muscle_mean DOUBLE",
    ),
    "randomization_checks": (
        "ALTER TABLE randomization_checks ADD COLUMN IF NOT EXISTS protocol VARCHAR",
        "ALTER TABLE randomization_checks ADD COLUMN IF NOT EXISTS cascade VARCHAR",
    ),
    # Whether the classifier's skill held within sites, and the verdict's boundary sensitivity
    # (#17); NULL on rows stored before.
    "validation_matrix": (
        "ALTER TABLE validation_matrix ADD COLUMN IF NOT EXISTS confounded_by_site BOOLEAN",
        "ALTER TABLE validation_matrix ADD COLUMN IF NOT EXISTS boundary_sensitivity VARCHAR",
        "ALTER TABLE validation_matrix ADD COLUMN IF NOT EXISTS layer_size_differs VARCHAR",
    ),
    # Quarantine rows name their stage (``ingestion``, ``preprocessing``, ...) since #18.
    "quarantine": (
        "ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS stage VARCHAR",
        "UPDATE quarantine SET stage = 'ingestion' WHERE stage IS NULL",
    ),
    # Which network explained the row (out_of_fold, held_out, unlabelled, unverified) and the
    # SHA-256 of the frozen reference it used, since #16. Older rows keep NULL: they came from
    # the whole ensemble, in sample for development scans, so no headline statistic reads them.
    "layer_saliency": (
        "ALTER TABLE layer_saliency ADD COLUMN IF NOT EXISTS explained_by VARCHAR",
        "ALTER TABLE layer_saliency ADD COLUMN IF NOT EXISTS reference_sha256 VARCHAR",
        # Layer ablation per modality in two-channel modes (#16 item 5): the layer's delta
        # with only the B-mode (or only the SWE) channel replaced; NULL elsewhere and before.
        "ALTER TABLE layer_saliency ADD COLUMN IF NOT EXISTS ablation_delta_bmode DOUBLE",
        "ALTER TABLE layer_saliency ADD COLUMN IF NOT EXISTS ablation_delta_swe DOUBLE",
        # The joint ablation of the paper's comparison (#16 item 7): every non-muscle layer
        # replaced at once (rows 1..5), or muscle (row 6); NULL before and for maps.
        "ALTER TABLE layer_saliency ADD COLUMN IF NOT EXISTS joint_ablation_delta DOUBLE",
        # The fraction of the layer's voxels with an SWE measurement (#16 item 8); the SWE
        # aggregates count those voxels only. NULL for bmode and before.
        "ALTER TABLE layer_saliency ADD COLUMN IF NOT EXISTS swe_coverage DOUBLE",
        # The score with every layer eroded or dilated by one voxel (#17, boundary
        # sensitivity); NULL before, and for layer Shapley.
        "ALTER TABLE layer_saliency ADD COLUMN IF NOT EXISTS mean_saliency_eroded DOUBLE",
        "ALTER TABLE layer_saliency ADD COLUMN IF NOT EXISTS mean_saliency_dilated DOUBLE",
        "ALTER TABLE layer_saliency ADD COLUMN IF NOT EXISTS ablation_delta_eroded DOUBLE",
        "ALTER TABLE layer_saliency ADD COLUMN IF NOT EXISTS ablation_delta_dilated DOUBLE",
        # The attribution settings the row was computed under (baseline, reference matching,
        # IG steps, occlusion box); NULL before, which counts as stale.
        "ALTER TABLE layer_saliency ADD COLUMN IF NOT EXISTS attribution_settings VARCHAR",
        # Each modality's ablation with every layer eroded or dilated by one voxel (#17: the
        # verdict's layer test reads each modality, so its boundary sensitivity must); NULL
        # before, and outside two-channel layer ablation.
        *(
            f"ALTER TABLE layer_saliency ADD COLUMN IF NOT EXISTS {column}_{boundary} DOUBLE"
            for column in ("ablation_delta_bmode", "ablation_delta_swe")
            for boundary in ("eroded", "dilated")
        ),
    ),
}
