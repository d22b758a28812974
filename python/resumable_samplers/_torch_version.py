"""Which generation of torch's CPU ``randperm`` the installed torch runs, without importing it.

torch's ``randperm`` on the CPU changed in torch 2.6 (pytorch PR #143682): for ``n`` from
214,748,364 (``(2**32 - 1) // 20``) on it draws 64-bit values in an "inside-out" loop, where
torch 2.5 and earlier run the swap loop with 32-bit draws for every ``n``. Below that length
both give the same order. The core names the two orders ``"torch"`` (2.6 and later) and
``"torch-legacy"`` (2.5 and earlier); :func:`torch_order` picks the one of the installed torch
from its package metadata, so that the command line stays fast (importing torch takes seconds).
"""

from __future__ import annotations

import functools
import re
from importlib.metadata import PackageNotFoundError, version

from resumable_samplers._limits import TORCH, TORCH_LEGACY

FIRST_CURRENT_RELEASE = (2, 6)
"""The first torch release (major, minor) whose ``randperm`` has the inside-out loop."""

CURRENT = TORCH
LEGACY = TORCH_LEGACY


def order_for_version(torch_version: str) -> str:
    """The core's order name for a torch version string such as ``"2.5.1+cpu"``.

    Pre-releases count as their release (``2.6.0rc1`` is 2.6; a 2.6 nightly built before the
    change landed is not told apart).

    Raises:
        ValueError: if the string does not start with ``MAJOR.MINOR``.
    """
    match = re.match(r"\s*v?(\d+)\.(\d+)", torch_version)
    if match is None:
        raise ValueError(f"cannot read a torch version from {torch_version!r}")
    release = (int(match.group(1)), int(match.group(2)))
    return CURRENT if release >= FIRST_CURRENT_RELEASE else LEGACY


@functools.cache
def torch_order() -> str:
    """The core's order name (``"torch"`` or ``"torch-legacy"``) for the installed torch.

    Read once from the installed package's metadata (``importlib.metadata.version("torch")``);
    without an installed torch distribution (e.g. a source build on the path), the current
    generation.
    """
    try:
        installed = version("torch")
    except PackageNotFoundError:
        return CURRENT
    return order_for_version(installed)
