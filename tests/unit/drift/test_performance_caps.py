"""A window's classes are capped: labels the stream invents cannot grow a sketch without
bound, and what is counted stays exact where it can be."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.performance import ClassificationSketch, classification
from drift.performance.classification import MISMATCH, accuracy, f1, precision

PROPERTY = settings(deadline=None, max_examples=200)
LABEL = st.sampled_from([*"abcdefgh", "1"])
PAIRS = st.lists(st.tuples(LABEL, LABEL), max_size=30)


def fed(pairs: list[tuple[str, str]]) -> ClassificationSketch:
    sketch = ClassificationSketch(positive_label="1")
    if pairs:
        sketch.update([a for a, _ in pairs], [p for _, p in pairs])
    return sketch


def test_free_text_labels_keep_a_bounded_sketch_and_an_exact_accuracy() -> None:
    n = 20_000
    actual = [f"customer-{i}" if i % 3 else "1" for i in range(n)]
    predicted = ["1" if i % 2 else "0" for i in range(n)]
    sketch = ClassificationSketch(positive_label="1")
    for start in range(0, n, 1000):
        sketch.update(actual[start : start + 1000], predicted[start : start + 1000])
    classes = sketch.classes
    assert len(classes) <= classification.MAX_CLASSES + 2 and "1" in classes
    assert len(sketch.confusion) <= 3 * (classification.MAX_CLASSES + 2)
    right = sum(a == p for a, p in zip(actual, predicted, strict=True))
    assert sketch.count == n and accuracy(sketch) == right / n
    # The binary metrics of the positive label are exact: it is always kept.
    tp = sum(a == p == "1" for a, p in zip(actual, predicted, strict=True))
    assert precision(sketch) == tp / predicted.count("1")
    assert sketch.metrics().macro_f1 is not None


def test_a_class_longer_than_the_cap_is_never_kept() -> None:
    sketch = fed([("x" * 201, "x" * 201), ("x" * 201, "0")])
    assert sketch.confusion == {("__other__", "__other__"): 1, ("__other__", "0"): 1}


@PROPERTY
@given(parts=st.lists(PAIRS, min_size=1, max_size=4), cap=st.integers(2, 5))
def test_capped_sketches_merge_as_if_fed_in_one_sequence(
    parts: list[list[tuple[str, str]]], cap: int
) -> None:
    # Whichever way a stream is split (partitions, flushes), the kept classes are the
    # lowest-ranked of all it sent and every pair folds the same.
    with pytest.MonkeyPatch.context() as m:
        m.setattr(classification, "MAX_CLASSES", cap)
        everything = [pair for part in parts for pair in part]
        merged = fed(parts[0])
        for part in parts[1:]:
            merged.merge(fed(part))
        whole = fed(everything)
        assert merged.confusion == whole.confusion
        assert len(set(merged.classes) - {"__other__", MISMATCH}) <= cap
        if everything:
            right = sum(a == p for a, p in everything) / len(everything)
            assert accuracy(merged) == right
            assert f1(merged) == f1(whole)
