"""Names of attribution methods and ``layer_saliency`` columns, shared by every reader.

``attribution`` writes the rows, ``statistics`` and the assets read them; this module is their
one source of these names and imports nothing (no torch), so the statistics package and the CLI
stay light.
"""

#: The method that yields ``ablation_delta`` instead of a voxel map.
ABLATION_METHOD = "layer_ablation"
#: Exact Shapley values over the six layers (64 coalitions); selectable, not a default.
SHAPLEY_METHOD = "layer_shapley"
#: Methods giving one number per layer, stored in ``ablation_delta`` (for ``layer_shapley``
#: the layer's Shapley value) with the voxel-map columns NaN.
LAYER_VALUE_METHODS: tuple[str, ...] = (ABLATION_METHOD, SHAPLEY_METHOD)
#: The method behind headline figures (see ``attribution.scan_profile`` for why).
DEFAULT_METHOD = ABLATION_METHOD
#: Every method the platform computes by default, voxel maps first.
PLATFORM_METHODS: tuple[str, ...] = (
    "integrated_gradients",
    "saliency",
    "gradcam",
    "occlusion",
    ABLATION_METHOD,
)

#: Every per-layer value of a ``layer_saliency`` row.
LAYER_VALUE_COLUMNS: tuple[str, ...] = (
    "volume_fraction",
    "mean_saliency",
    "saliency_share",
    "enrichment",
    "ablation_delta",
)
#: ``layer_saliency`` columns of layer ablation in a two-channel mode (``bmode_swe``): the
#: layer's delta with only that modality's channel replaced (NULL for other methods and modes).
CHANNEL_DELTA_COLUMNS: dict[str, str] = {
    "bmode": "ablation_delta_bmode",
    "swe": "ablation_delta_swe",
}
#: ``layer_saliency`` column of the layer-value methods: the drop when the row's whole side of
#: the paper's comparison is replaced at once: every non-muscle layer (on rows 1..5, the same
#: number) or muscle (on the muscle row, equal to its ``ablation_delta``). NULL before #16.
JOINT_ABLATION_COLUMN = "joint_ablation_delta"
#: Per-layer fraction of voxels with an SWE measurement, in SWE modes (NULL for ``bmode``).
SWE_COVERAGE_COLUMN = "swe_coverage"
#: The one-voxel boundary perturbations of every layer (``attribution.boundary``): each layer's
#: voxels eroded by one voxel, or dilated by one voxel into the neighbouring tissue.
BOUNDARIES: tuple[str, ...] = ("eroded", "dilated")
#: Input modes with no always-measured channel (SWE alone): their voxel-map aggregates count
#: the layer's SWE-measured voxels only, ``swe_coverage`` of it (``attribution.scan_profile``).
#: In ``bmode_swe`` every voxel has B-mode, so every voxel counts.
MEASURED_ONLY_MODES: tuple[str, ...] = ("swe",)
#: The values summarized per layer across the cohort in ``layer_summary`` (the layer's size is a
#: property of the scan, not evidence of a method); the per-modality ablation deltas report
#: which modality carries a layer's evidence: they never rank layers, but a verdict's layer test
#: also reads them (``statistics.verdicts``, gate 4).
SUMMARIZED_COLUMNS: tuple[str, ...] = (*LAYER_VALUE_COLUMNS[1:], *CHANNEL_DELTA_COLUMNS.values())


def score_column(method: str) -> str:
    """The per-layer figure a method is ranked by."""
    return "ablation_delta" if method in LAYER_VALUE_METHODS else "mean_saliency"


def boundary_column(method: str, boundary: str) -> str:
    """The ``layer_saliency`` column of a method's score under a boundary perturbation
    (``mean_saliency_eroded``, ``ablation_delta_dilated``, ...)."""
    return _perturbed(score_column(method), boundary)


def _perturbed(column: str, boundary: str) -> str:
    """``column`` under a boundary perturbation (``BOUNDARIES``)."""
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}; got {boundary!r}")
    return f"{column}_{boundary}"


#: ``layer_saliency`` columns of the boundary sensitivity analysis: the score columns with every
#: layer eroded or dilated by one voxel (map methods: ``mean_saliency_*``; layer ablation:
#: ``ablation_delta_*``, and in a two-channel mode each modality's ``ablation_delta_bmode_*``,
#: ``ablation_delta_swe_*``; NULL for layer Shapley, whose 64 coalitions are not re-run).
BOUNDARY_COLUMNS: tuple[str, ...] = tuple(
    f"{score}_{boundary}"
    for score in ("mean_saliency", "ablation_delta", *CHANNEL_DELTA_COLUMNS.values())
    for boundary in BOUNDARIES
)


def channel_column(modality: str, boundary: str | None = None) -> str:
    """The ``layer_saliency`` column of layer ablation's delta with only ``modality``'s channel
    replaced, or that delta under a boundary perturbation (``ablation_delta_swe_dilated``)."""
    column = CHANNEL_DELTA_COLUMNS[modality]
    return column if boundary is None else _perturbed(column, boundary)


def comparison_column(method: str) -> str:
    """The value compared between non-muscle tissue and muscle (see
    ``statistics.comparisons``): the joint ablations for layer ablation, the summed layer
    values for layer Shapley, mean saliency over voxels for maps."""
    if method == ABLATION_METHOD:
        return JOINT_ABLATION_COLUMN
    return "ablation_delta" if method in LAYER_VALUE_METHODS else "mean_saliency"


#: ``layer_saliency.explained_by``: which model explained a scan (``attribution.explainer``).
#: A labelled scan by one fold member that did not train on it (a development scan's own fold,
#: a test scan's hashed member); an unlabelled one by the ensemble; ``unverified`` where the
#: champion records no split.
OUT_OF_FOLD = "out_of_fold"
HELD_OUT = "held_out"
UNLABELLED = "unlabelled"
UNVERIFIED = "unverified"
#: The ``explained_by`` values whose rows are out-of-sample explanations of labelled scans:
#: the rows headline statistics use.
OUT_OF_SAMPLE: tuple[str, ...] = (OUT_OF_FOLD, HELD_OUT)
