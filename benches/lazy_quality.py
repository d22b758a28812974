"""How uniform the lazy order is: a Mallows-kernel MMD test against uniform shuffles.

The method is the statistical test of Mitchell, Stokes, Frank and Holmes, "Bandwidth-Optimal
Random Shuffling for GPUs" (ACM TOPC, 2022): permutations are compared through the Mallows
kernel ``K(s, t) = exp(-lam * d(s, t))``, where ``d`` is the Kendall distance (the number of
pairs of items that ``s`` and ``t`` put in opposite orders), here with ``lam = 5 / C(n, 2)`` so
that the kernel does not vanish at large ``n``. The kernel is characteristic on permutations,
so the maximum mean discrepancy (MMD) between two distributions is zero only when they agree.

For each ``n`` the script draws ``m`` lazy permutations (``randperm(n, seed, permutation="lazy")``
for seeds ``0..m-1``) and ``m`` NumPy shuffles (``default_rng(s).permutation(n)`` for
independent seeds), and reports

* the unbiased two-sample statistic ``MMD^2`` between the lazy sample and the NumPy sample,
  with a permutation-test p-value (the sample labels shuffled ``--rounds`` times);
* the same for two independent NumPy samples, as the reference of what a uniform shuffle gives;
* the lazy sample's and the second NumPy sample's one-sample ``MMD^2`` against the exact
  uniform distribution, whose kernel mean
  has the closed form ``prod_{j=1..n} (1 - q^j) / (j (1 - q))`` with ``q = exp(-lam)`` (the
  generating function of the number of inversions).

A p-value is uniform on (0, 1] when the two samples come from the same distribution, so values
well above 0.01 for the lazy order, like NumPy's, mean no detectable departure from uniform.

    python benches/lazy_quality.py [--sizes 5,100,1000] [--samples 2000,600,150] [--rounds 500]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import numpy.typing as npt


def ranks(perms: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``r[s, i]`` = the position of item ``i`` in permutation ``s``."""
    r = np.empty_like(perms)
    rows = np.arange(perms.shape[0])[:, None]
    r[rows, perms] = np.arange(perms.shape[1])[None, :]
    return r


def kendall_gram(perms: npt.NDArray[np.int64], block: int = 32) -> npt.NDArray[np.float64]:
    """``D[s, t]`` = the Kendall distance between permutations ``s`` and ``t``.

    With ``f(s)[i, j] = sign(r_s[i] - r_s[j])`` over all ordered pairs, ``f(s) . f(t)`` is
    ``2 * (C(n, 2) - 2 d(s, t))``; the dot products are summed a block of items at a time.
    """
    m, n = perms.shape
    r = ranks(perms).astype(np.float32)
    dots = np.zeros((m, m), dtype=np.float64)
    for a in range(0, n, block):
        f = np.sign(r[:, a : a + block, None] - r[:, None, :]).reshape(m, -1)
        dots += (f @ f.T).astype(np.float64)
    pairs = n * (n - 1) / 2
    return (pairs - dots / 2) / 2


def uniform_kernel_mean(n: int, lam: float) -> float:
    """``E K(s, t)`` for ``t`` uniform (any fixed ``s``): ``E q^inv(t)`` with ``q = exp(-lam)``."""
    q = math.exp(-lam)
    log_mean = 0.0
    for j in range(1, n + 1):
        # (1 - q^j) / (j (1 - q)), computed stably for q close to 1
        log_mean += math.log(-math.expm1(-lam * j)) - math.log(j) - math.log(-math.expm1(-lam))
    return math.exp(log_mean) if q < 1 else 1.0


def mmd2_two_sample(k: npt.NDArray[np.float64], x: npt.NDArray[np.bool_]) -> float:
    """Unbiased ``MMD^2`` between the rows where ``x`` is true and the others."""
    y = ~x
    mx, my = int(x.sum()), int(y.sum())
    kx, ky = k @ x, k @ y
    diag = np.diag(k)
    sxx = (float(x @ kx) - float(diag[x].sum())) / (mx * (mx - 1))
    syy = (float(y @ ky) - float(diag[y].sum())) / (my * (my - 1))
    sxy = float(x @ ky) / (mx * my)
    return sxx + syy - 2 * sxy


def two_sample_test(k: npt.NDArray[np.float64], rounds: int, seed: int) -> tuple[float, float]:
    """``(MMD^2, p-value)`` of the first and second halves of the kernel matrix ``k``; the
    p-value from ``rounds`` relabellings."""
    labels = np.zeros(len(k), dtype=np.bool_)
    labels[: len(k) // 2] = True
    stat = mmd2_two_sample(k, labels)
    rng = np.random.default_rng(seed)
    above = sum(mmd2_two_sample(k, rng.permutation(labels)) >= stat for _ in range(rounds))
    return stat, (1 + above) / (1 + rounds)


def one_sample_mmd2(k: npt.NDArray[np.float64], n: int, lam: float) -> float:
    """Unbiased ``MMD^2`` between a sample (kernel matrix ``k``) and the exact uniform
    distribution over permutations of ``n`` items."""
    m = len(k)
    within = (float(k.sum()) - float(np.trace(k))) / (m * (m - 1))
    return within - uniform_kernel_mean(n, lam)


def _pair(k: npt.NDArray[np.float64], x: slice, y: slice) -> npt.NDArray[np.float64]:
    """The kernel matrix of the samples at rows ``x`` and ``y`` of ``k``, in that order."""
    idx = np.r_[x, y]
    return k[np.ix_(idx, idx)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5,100,1000")
    parser.add_argument("--samples", default="2000,600,150", help="permutations per sample")
    parser.add_argument("--rounds", type=int, default=500, help="relabellings per p-value")
    args = parser.parse_args()

    import resumable_samplers as rs

    sizes = [int(s) for s in args.sizes.split(",")]
    samples = [int(s) for s in args.samples.split(",")]
    print("| n | samples | compared | MMD^2 | p-value | MMD^2 vs exact uniform |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n, m in zip(sizes, samples, strict=True):
        t = time.perf_counter()
        lam = 5 / (n * (n - 1) / 2)
        lazy = np.stack([rs.randperm(n, s, permutation="lazy").astype(np.int64) for s in range(m)])
        seeds = np.random.SeedSequence(20220101 + n).spawn(2 * m)
        numpy_a = np.stack([np.random.default_rng(s).permutation(n) for s in seeds[:m]])
        numpy_b = np.stack([np.random.default_rng(s).permutation(n) for s in seeds[m:]])
        k = np.exp(-lam * kendall_gram(np.concatenate([lazy, numpy_a, numpy_b])))
        la, na, nb = slice(0, m), slice(m, 2 * m), slice(2 * m, 3 * m)

        rows = [
            ("lazy vs numpy", *two_sample_test(_pair(k, la, na), args.rounds, n)),
            ("numpy vs numpy", *two_sample_test(_pair(k, nb, na), args.rounds, n)),
        ]
        uniform = [one_sample_mmd2(k[la, la], n, lam), one_sample_mmd2(k[nb, nb], n, lam)]
        for (name, stat, p), vs_uniform in zip(rows, uniform, strict=True):
            print(f"| {n} | {m} + {m} | {name} | {stat:.3g} | {p:.3f} | {vs_uniform:.3g} |")
        print(f"<!-- n = {n}: {time.perf_counter() - t:.1f} s -->", flush=True)


if __name__ == "__main__":
    main()
