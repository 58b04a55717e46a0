"""SIGReg and the Epps–Pulley statistic against values that follow from the math (see ragcun/model/sigreg.py)."""

import math

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from ragcun.model.sigreg import epps_pulley, sigreg

from .conftest import KILLABLE


def reference_constant_column(n: int) -> float:
    """N · 2 ∫₀³ (1 − φ(t))² φ(t) dt by the same 17-point trapezoid rule, written out independently."""
    t = [3 * i / 16 for i in range(17)]
    f = [(1 - math.exp(-s * s / 2)) ** 2 * math.exp(-s * s / 2) for s in t]
    return n * 2 * (3 / 16) * (sum(f) - (f[0] + f[-1]) / 2)


def test_constant_columns_match_the_closed_form():
    assert reference_constant_column(256) == pytest.approx(102.924, abs=0.01)
    stat = epps_pulley(torch.zeros(256, 4))
    assert stat.shape == (4,)
    assert torch.allclose(stat, torch.full((4,), 102.924), atol=0.01)
    assert float(epps_pulley(torch.zeros(1024, 1))[0]) == pytest.approx(411.697, abs=0.01)


def test_standard_normal_columns_average_near_the_expectation():
    # 200 independent draws of N = 512 are 200 columns of one matrix.
    generator = torch.Generator().manual_seed(0)
    stat = epps_pulley(torch.randn(512, 200, generator=generator))
    assert 0.9 <= float(stat.mean()) <= 1.2
    # and it does not grow with N (the constant column's does, linearly)
    large = epps_pulley(torch.randn(4096, 200, generator=generator))
    assert 0.9 <= float(large.mean()) <= 1.2


@pytest.mark.parametrize(
    "transform, expected",
    [
        (lambda x: x + 1, 456.0),
        (lambda x: 0.5 * x, 155.0),
        (lambda x: 2.0 * x, 243.0),
    ],
)
def test_shift_and_scale_give_the_expected_statistic(transform, expected):
    generator = torch.Generator().manual_seed(1)
    stat = epps_pulley(transform(torch.randn(1024, 400, generator=generator)))
    assert float(stat.mean()) == pytest.approx(expected, rel=0.05)


def test_precision_is_float32_at_least():
    x = torch.randn(256, 8, generator=torch.Generator().manual_seed(2))
    assert epps_pulley(x.to(torch.bfloat16)).dtype == torch.float32
    assert torch.allclose(epps_pulley(x.to(torch.bfloat16)), epps_pulley(x.to(torch.bfloat16).float()))
    assert epps_pulley(x.double()).dtype == torch.float64
    assert sigreg(x.to(torch.bfloat16), num_slices=16).dtype == torch.float32


def test_gradcheck_in_float64():
    x = torch.randn(24, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3), requires_grad=True)
    assert torch.autograd.gradcheck(epps_pulley, (x,))
    assert torch.autograd.gradcheck(lambda y: sigreg(y, num_slices=8, seed=5), (x,))


def test_directions_follow_the_seed():
    x = torch.randn(128, 32, generator=torch.Generator().manual_seed(4)) * torch.linspace(0.2, 3, 32)
    assert torch.equal(sigreg(x, num_slices=64, seed=7), sigreg(x, num_slices=64, seed=7))
    assert not torch.equal(sigreg(x, num_slices=64, seed=7), sigreg(x, num_slices=64, seed=8))


def test_adam_drives_a_far_matrix_to_gaussian():
    generator = torch.Generator().manual_seed(5)
    # A tight cluster around (2, …, 2): wrong mean, 1/10 of the scale.
    x = (2 + 0.1 * torch.randn(512, 16, generator=generator)).requires_grad_()
    start = float(sigreg(x.detach(), seed=0))
    optimizer = torch.optim.Adam([x], lr=0.2)
    for step in range(150):
        optimizer.zero_grad()
        sigreg(x, num_slices=64, seed=step).backward()
        optimizer.step()
    final = float(sigreg(x.detach(), seed=10_000))  # fresh directions, not the ones it was trained on
    assert start > 500  # N times a statistic of order 1
    assert final < 2


def ddp_batch() -> torch.Tensor:
    return torch.randn(64, 8, generator=torch.Generator().manual_seed(6)) * 1.5 + 0.3


def _ddp_rank(rank: int, world: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        local = ddp_batch().chunk(world)[rank].clone().requires_grad_()
        value = sigreg(local, num_slices=32, seed=3)
        value.backward()
        save_file({"value": value.detach().reshape(1), "grad": local.grad}, out_file)
    finally:
        dist.destroy_process_group()


def test_ddp_all_reduce_gives_the_full_batch_statistic(tmp_path):
    full = ddp_batch().requires_grad_()
    expected = sigreg(full, num_slices=32, seed=3)
    expected.backward()
    # Two ranks, each a process (forked from conftest.KILLABLE), meeting through a file store.
    ranks = [
        KILLABLE.Process(target=_ddp_rank, args=(rank, 2, str(tmp_path / "init"), str(tmp_path / f"rank{rank}")))
        for rank in range(2)
    ]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(120)
    assert [process.exitcode for process in ranks] == [0, 0]
    results = {}
    for rank in range(2):
        saved = load_file(tmp_path / f"rank{rank}")
        results[rank] = (float(saved["value"]), saved["grad"])
    for rank in range(2):
        value, grad = results[rank]
        assert value == pytest.approx(float(expected.detach()), rel=1e-5)
        # The backward all-reduce sums the (identical) upstream gradient of both ranks, so each rank holds
        # world × its rows' full-batch gradient; DDP's gradient averaging divides the world back out.
        torch.testing.assert_close(grad / 2, full.grad.chunk(2)[rank], rtol=1e-4, atol=1e-6)
