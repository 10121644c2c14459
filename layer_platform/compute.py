"""Device selection and seeding shared by every model: CPU first, CUDA when present."""

from __future__ import annotations

import copy
import logging
import os
import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor, nn

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")

_log = logging.getLogger(__name__)
_Trained = TypeVar("_Trained")


def select_device(preference: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; asking for ``cuda`` without one is an error."""
    if preference not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}; got {preference!r}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a training run repeats exactly on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


#: cuBLAS needs a fixed workspace for deterministic GEMMs (set before the first CUDA matmul).
CUBLAS_WORKSPACE = ":4096:8"


def member_seed(base: int, member: int) -> int:
    """Ensemble member ``member``'s own seed, derived from the base seed (no two members share
    an initialisation or a shuffle, and each repeats from the base seed alone)."""
    return int(np.random.SeedSequence([base, member]).generate_state(1)[0])


def deterministic_on(device: torch.device) -> None:
    """On CUDA, refuse nondeterministic kernels so a seeded run repeats exactly there too.

    ``torch.use_deterministic_algorithms`` raises on an op without a deterministic kernel
    rather than silently varying; cuBLAS reads ``CUBLAS_WORKSPACE_CONFIG`` (set here unless
    the environment already fixes it). Nothing changes on the CPU, which is deterministic.
    """
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)


#: ``/proc/cpuinfo`` flags of units that multiply bfloat16 in hardware; without one, bfloat16
#: is emulated and slower than float32.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX).

    Reads the Linux ``/proc/cpuinfo`` flags (or ``cpuinfo``, for tests); elsewhere it answers
    False and training stays in float32.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = {
        flag
        for line in cpuinfo.splitlines()
        if line.startswith("flags")
        for flag in line.partition(":")[2].split()
    }
    return bool(flags & BF16_CPU_FLAGS)


@dataclass(frozen=True)
class Precision:
    """How a network computes on its device: an autocast dtype (None: float32) and the
    channels-last memory layout, which oneDNN and cuDNN convolve faster than channels-first.

    On the demo's CPU grid, bfloat16 autocast with channels-last trained the classifier 2.1-2.3x
    faster than float32 channels-first (benchmark 10, ``bench/precision.py``).
    """

    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool = True

    @property
    def name(self) -> str:
        """``float32``, ``bfloat16`` or ``float16``: what a tracker records."""
        return str(self.dtype or torch.float32).removeprefix("torch.")

    @property
    def needs_grad_scaler(self) -> bool:
        """float16's narrow range needs loss scaling; bfloat16 has float32's range."""
        return self.dtype == torch.float16

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler for training in this precision (enabled for float16 only)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.needs_grad_scaler)

    def autocast(self) -> AbstractContextManager:
        """The autocast context for forward passes (a no-op in float32)."""
        return torch.autocast(
            self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None
        )

    def model(self, model: nn.Module) -> nn.Module:
        """``model`` on the device, in the layout its batches come in."""
        return model.to(self.device, memory_format=self._layout)

    def batch(self, x: Tensor) -> Tensor:
        """A (B, C, *3 spatial) batch on the device, in the model's layout."""
        return x.to(self.device, non_blocking=True).contiguous(memory_format=self._layout)

    @property
    def _layout(self) -> torch.memory_format:
        return torch.channels_last_3d if self.channels_last else torch.contiguous_format


#: Most of a CUDA device's free memory a training set may take to be kept there.
RESIDENT_SHARE = 0.25


def resident(device: torch.device, *tensors: Tensor) -> tuple[Tensor, ...]:
    """``tensors`` copied to a CUDA ``device`` once, when together they fit in
    ``RESIDENT_SHARE`` of its free memory; otherwise (and on a CPU) as they are.

    Batches indexed from host memory are copied to the GPU at every step: there a classifier
    epoch waited 23 % of its time for data and a segmenter epoch 43 % (benchmark 7 on one
    H200), while the whole training set of a cohort takes a few GiB of its memory.
    """
    if device.type != "cuda":
        return tensors
    free, _ = torch.cuda.mem_get_info(device)
    if sum(t.nbytes for t in tensors) > RESIDENT_SHARE * free:
        return tensors
    return tuple(t.to(device) for t in tensors)


def training_precision(device: torch.device, mixed: bool = True) -> Precision:
    """Mixed precision where the device has fast low-precision units, float32 elsewhere.

    float16 on CUDA (with a grad scaler), bfloat16 on CPUs with AVX512-BF16 or AMX; with
    ``mixed`` False, or on any other CPU, float32.
    """
    if not mixed:
        return Precision(device, None)
    if device.type == "cuda":
        return Precision(device, torch.float16)
    if device.type == "cpu" and cpu_has_bf16():
        return Precision(device, torch.bfloat16)
    return Precision(device, None)


def require_finite_weights(model: nn.Module, what: str) -> None:
    """Raise ``FloatingPointError`` naming the first parameter or buffer of ``model`` holding a
    NaN or an infinity (``what``: which training, at which epoch).

    A finite loss and finite outputs do not prove finite weights: a bfloat16 backward pass on
    the CPU was seen to write NaN into a kernel (the fault ``require_repeatable_gradients``
    describes); that model's predictions in training were finite probabilities, and its
    attribution maps NaN.
    """
    for name, tensor in (*model.named_parameters(), *model.named_buffers()):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise FloatingPointError(f"{what} made the weights non-finite ({name})")


#: torch 2.13's oneDNN bfloat16 ``Conv3d`` weight gradient on the CPU does not repeat where the
#: kernel spans the first spatial axis and the input has at most this many voxels along it.
SHALLOW_BF16_CONV_VOXELS = 2


def require_repeatable_gradients(
    model: nn.Module, precision: Precision, batch: Tensor, what: str
) -> None:
    """Raise ``FloatingPointError`` when, in CPU bfloat16, one of ``model``'s 3D convolutions
    would take an input as shallow as ``SHALLOW_BF16_CONV_VOXELS`` along its first spatial axis
    (found by a float32 pass of one sample shaped like ``batch`` through a copy).

    There, identical backward passes were measured to give weight gradients that differ by up
    to 1e35 or NaN: the kernel reads memory it never wrote, so a seeded run neither repeats nor
    can be trusted (kernel 3, strides 1 and 2, 1 to 128 channels; inputs of 3 to 8 voxels
    along that axis, or of 2 along either other axis, repeated). A network's input shape
    decides whether it happens: a 16-voxel lateral axis reaches 2 at the classifier's deepest
    block, 32 does not. Repeating two passes did not detect it reliably: the stale memory
    sometimes agreed.
    """
    if precision.dtype != torch.bfloat16 or precision.device.type != "cpu":
        return
    shallow: list[str] = []

    def record(name: str) -> Callable[[nn.Conv3d, tuple[Tensor, ...]], None]:
        def hook(conv: nn.Conv3d, inputs: tuple[Tensor, ...]) -> None:
            if conv.kernel_size[0] > 1 and inputs[0].shape[2] <= SHALLOW_BF16_CONV_VOXELS:
                shallow.append(name)

        return hook

    probe = copy.deepcopy(model).eval()
    for name, module in probe.named_modules():
        if isinstance(module, nn.Conv3d):
            module.register_forward_pre_hook(record(name))
    with torch.no_grad():
        probe(torch.zeros_like(batch[:1], device=precision.device))
    if shallow:
        raise FloatingPointError(
            f"{what}: {precision.name} weight gradients on this CPU do not repeat where a"
            f" convolution's input is {SHALLOW_BF16_CONV_VOXELS} voxels or fewer along its"
            f" first axis ({shallow[0]})"
        )


def train_with_fallback(train: Callable[[Precision], _Trained], precision: Precision) -> _Trained:
    """``train(precision)``, and once more from the start in float32 when a mixed-precision run
    raises ``FloatingPointError`` (its gradients do not repeat, or its loss or weights turned
    non-finite): the fast path never costs a model. A float32 run's divergence is raised as is."""
    try:
        return train(precision)
    except FloatingPointError as error:
        if precision.dtype is None:
            raise
        _log.warning("%s; training again in float32", error)
        return train(replace(precision, dtype=None))
