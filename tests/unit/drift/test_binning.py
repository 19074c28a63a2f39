"""Grid histograms against numpy's binary search, on the inputs that stress the grid."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drift.binning import MIN_VALUES_FOR_GRID, EdgeIndex, HistogramBatch, histogram, thinned


def searched(edges: np.ndarray, x: np.ndarray) -> list[int]:
    return np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1).tolist()


@pytest.mark.parametrize("cells", [8, 1024, 1 << 16])
@pytest.mark.parametrize("span_share", [1.0, 0.5])
def test_grid_histogram_equals_binary_search(cells: int, span_share: float) -> None:
    rng = np.random.default_rng(cells)
    # Heavy tails crowd many edges into few cells; rounding puts values exactly on edges.
    edges = np.unique(np.round(rng.lognormal(0.0, 1.5, 700), 2))
    x = np.concatenate(
        (
            np.round(rng.lognormal(0.3, 1.7, MIN_VALUES_FOR_GRID * 2), 2),
            edges,
            np.nextafter(edges, -np.inf),
            [edges[0] - 1.0, edges[-1] + 1.0, -1e300, 1e300, np.inf, -np.inf, np.nan],
        )
    )
    rng.shuffle(x)
    top = edges[0] + span_share * (edges[-1] - edges[0])
    index = EdgeIndex(edges, cells=cells, span=(float(edges[0]), float(top)))
    assert index.usable
    assert histogram(edges, x, index).tolist() == searched(edges, x)


@settings(max_examples=60, deadline=None)
@given(
    edges=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=60, unique=True).map(
        lambda v: np.array(sorted(v))
    ),
    seed=st.integers(0, 2**32 - 1),
    cells=st.sampled_from([1, 3, 64, 4096]),
)
@example(edges=np.array([0.0, 5e-324]), seed=0, cells=1)  # cells / width overflows
def test_any_edges_any_values(edges: np.ndarray, seed: int, cells: int) -> None:
    rng = np.random.default_rng(seed)
    picks = rng.choice(edges, MIN_VALUES_FOR_GRID)
    jitter = rng.normal(0.0, 1.0 + float(np.ptp(edges)) / edges.size, MIN_VALUES_FOR_GRID)
    x = np.concatenate((picks, picks + jitter))
    index = EdgeIndex(edges, cells=cells)
    assert histogram(edges, x, index).tolist() == searched(edges, x)


def test_unusable_grids_and_small_inputs_fall_back_to_binary_search() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=MIN_VALUES_FOR_GRID)
    constant = np.array([1.0])
    assert not EdgeIndex(constant).usable
    for edges in (constant, np.array([-1.0, 0.0, 1.0])):
        assert histogram(edges, x, EdgeIndex(edges)).tolist() == searched(edges, x)
        assert histogram(edges, x[:10]).tolist() == searched(edges, x[:10])
        assert histogram(edges, x[:0]).tolist() == searched(edges, x[:0])


def test_a_batch_returns_histograms_in_the_order_added() -> None:
    rng = np.random.default_rng(4)
    a, b = np.sort(rng.normal(size=50)), np.sort(rng.uniform(-3, 3, 9))
    columns = [
        (a, rng.normal(size=MIN_VALUES_FOR_GRID + 1), EdgeIndex(a)),
        (b, rng.normal(size=5), None),  # counted at once
        (b, rng.normal(size=MIN_VALUES_FOR_GRID * 3), None),  # binary search in the kernel
        (a, rng.normal(1.0, size=MIN_VALUES_FOR_GRID * 2), EdgeIndex(a)),
    ]
    for start in (False, True):
        batch = HistogramBatch()
        slots = [batch.add(edges, x, index) for edges, x, index in columns]
        results = batch.start()() if start else batch.run()
        assert slots == [0, 1, 2, 3]
        assert [r.tolist() for r in results] == [searched(e, x) for e, x, _ in columns]


def test_batches_started_from_several_threads_each_get_their_own_results() -> None:
    rng = np.random.default_rng(5)
    edges = np.sort(rng.normal(size=300))
    inputs = [rng.normal(i / 4, 1.0, MIN_VALUES_FOR_GRID * 2) for i in range(8)]
    out: dict[int, list[int]] = {}

    def run(i: int) -> None:
        batch = HistogramBatch()
        batch.add(edges, inputs[i], EdgeIndex(edges))
        out[i] = batch.start()()[0].tolist()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {i: searched(edges, x) for i, x in enumerate(inputs)}


def test_a_forked_child_gets_a_worker_of_its_own() -> None:
    rng = np.random.default_rng(6)
    edges = np.sort(rng.normal(size=100))
    x = rng.normal(size=MIN_VALUES_FOR_GRID * 2)

    def binned() -> list[int]:
        batch = HistogramBatch()
        batch.add(edges, x, EdgeIndex(edges))
        return batch.start()()[0].tolist()

    assert binned() == searched(edges, x)  # the parent's worker thread is running now
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        result = pool.apply_async(_start_a_batch, (edges, x))
        assert result.get(timeout=60) == searched(edges, x)


def _start_a_batch(edges: np.ndarray, x: np.ndarray) -> list[int]:
    batch = HistogramBatch()
    batch.add(edges, x, EdgeIndex(edges))
    return batch.start()()[0].tolist()


def test_spans_too_narrow_for_a_grid_keep_their_edges() -> None:
    edges = np.array([0.0, 5e-324, 1.0])
    with np.errstate(all="raise"):  # no overflow to inf, no NaN cells
        assert thinned(edges, (0.0, 5e-324)).tolist() == edges.tolist()
        assert not EdgeIndex(edges, span=(0.0, 5e-324)).usable
