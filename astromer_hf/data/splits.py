"""Reproducible splits: by a hash of ``object_id``, and the few-shot protocol of the Astromer papers.

``hash_split`` puts an object in train / validation / test from a hash of its identifier alone, so the assignment
never depends on the order, the number of objects or the machine, and every band of one object lands in the same
split. ``few_shot_splits`` builds the labelled subsets of the papers' few-shot protocol: a fixed number of test curves per class
(100), ``spc`` training curves per class (SPC 20 / 50 / 100 / 500 in the papers), and a validation set from the rest,
for each of several folds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from datasets import Dataset, DatasetDict

SPLIT_NAMES = ("train", "validation", "test")
PAPER_SPC = (20, 50, 100, 500)


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Validate train / validation / test fractions: three non-negative numbers summing to 1."""
    if len(fractions) != 3 or any(not 0 <= f <= 1 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"split fractions must be three numbers in [0, 1] summing to 1, got {list(fractions)}")
    return tuple(float(f) for f in fractions)


def hash_unit(object_id: str, salt: str = "") -> float:
    """A number in [0, 1) determined by ``salt`` and ``object_id`` only (BLAKE2b, 64 bits)."""
    digest = hashlib.blake2b(f"{salt}{object_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def hash_split(object_id: str, fractions: Sequence[float] = (0.8, 0.1, 0.1), salt: str = "") -> str:
    """``"train"``, ``"validation"`` or ``"test"`` for an object, from a hash of its identifier."""
    train, validation, _ = fractions
    u = hash_unit(object_id, salt)
    return "train" if u < train else "validation" if u < train + validation else "test"


def few_shot_splits(
    dataset: Dataset,
    spc: int,
    fold: int = 0,
    *,
    n_test: int = 100,
    validation_fraction: float = 0.2,
    seed: int = 0,
    label_column: str = "label",
) -> DatasetDict:
    """One fold of the few-shot protocol.

    For every class, the curves are put in a random order fixed by ``(seed, fold, class)``: the first ``n_test``
    form the test set, the next ``spc`` the training set, and ``max(1, round(validation_fraction * spc))`` taken from
    the end of the order the validation set. So the test set of a fold is the same for every SPC, and the training
    sets are nested (SPC 20 ⊂ SPC 50 ⊂ ...). Sampling is without replacement (the Astromer 2 script sampled training
    curves with replacement; we do not repeat curves).

    Args:
        dataset: labelled curves (rows with a null label are ignored).
        spc: training samples per class.
        fold: fold number; different folds draw different orders.
        n_test: test samples per class.
        validation_fraction: validation size per class relative to ``spc``.
        seed: base seed.

    Returns:
        `DatasetDict` with ``train``, ``validation`` and ``test``.

    Raises:
        ValueError: when a class has fewer curves than ``n_test + spc + validation`` (naming the class).
    """
    if spc < 1 or n_test < 0 or fold < 0:
        raise ValueError(f"spc must be >= 1, n_test >= 0 and fold >= 0, got spc={spc}, n_test={n_test}, fold={fold}")
    labels = np.asarray(dataset[label_column], dtype=object)
    n_validation = max(1, round(validation_fraction * spc))
    names = dataset.features[label_column].names if hasattr(dataset.features[label_column], "names") else None
    chosen: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_NAMES}
    for label in sorted({int(x) for x in labels if x is not None}):
        members = np.flatnonzero(labels == label)
        needed = n_test + spc + n_validation
        if len(members) < needed:
            name = names[label] if names else label
            raise ValueError(
                f"class {name!r} has {len(members)} curves; n_test={n_test} + spc={spc} + validation={n_validation} "
                f"= {needed} are needed"
            )
        order = members[np.random.default_rng([seed, fold, label]).permutation(len(members))]
        chosen["test"].append(order[:n_test])
        chosen["train"].append(order[n_test : n_test + spc])
        chosen["validation"].append(order[len(order) - n_validation :])
    return DatasetDict({name: dataset.select(np.sort(np.concatenate(chosen[name]))) for name in SPLIT_NAMES})


def load_prepared_splits(path) -> DatasetDict:
    """The prepared dataset at ``path`` (``astromer data prepare``), checked to hold every split of
    :data:`SPLIT_NAMES`; a ValueError naming the folder otherwise."""
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if not isinstance(loaded, DatasetDict):
        raise ValueError(f"{path} holds one split; expected a prepared dataset with the splits {SPLIT_NAMES}")
    missing = [name for name in SPLIT_NAMES if name not in loaded]
    if missing:
        raise ValueError(f"{path} lacks the split(s) {missing}")
    return loaded
