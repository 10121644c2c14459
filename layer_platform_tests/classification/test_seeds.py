"""Issue #16 item 9: every ensemble member its own seed; deterministic kernels on CUDA only."""

from __future__ import annotations

import torch

from layer_platform.compute import deterministic_on, member_seed


def test_each_member_has_its_own_seed_derived_from_the_base_seed() -> None:
    seeds = [member_seed(0, k) for k in range(5)]
    assert len(set(seeds)) == 5
    assert seeds == [member_seed(0, k) for k in range(5)]
    assert seeds != [member_seed(1, k) for k in range(5)]


def test_deterministic_kernels_are_switched_on_for_cuda_only() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    deterministic_on(torch.device("cpu"))
    assert torch.are_deterministic_algorithms_enabled() == before
    if torch.cuda.is_available():
        deterministic_on(torch.device("cuda"))
        assert torch.are_deterministic_algorithms_enabled()
