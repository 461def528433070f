"""The baselines of the evaluation, and the scikit-learn classifiers every feature-based row uses.

* ``features_rf``: the classical features (:mod:`~astromer_hf.evaluation.features`), the training median for what
  could not be computed, and a random forest;
* ``raw_gru``: a GRU trained from scratch on the windows' raw ``(time, magnitude)`` sequences (the "raw RNN" of
  spec §6.4), with a small MLP on its last state, trained like the Astromer heads
  (:func:`~astromer_hf.evaluation.training.fit_window_classifier`);
* the classifier factories :func:`random_forest` (``features_rf``), :func:`linear_probe` (``linear_probe``,
  ``random_linear_probe``: standardised inputs, multinomial logistic regression) and :func:`stacked_hybrid`
  (``hybrid_rf``: the two stacked).

The raw GRU sees, per observation, the window-centred magnitude, the window-centred time (days) and log10 of the
time since the previous observation (days; 1e-3 for the first), each standardised with the mean and
standard deviation of the training windows' real observations. It is trained on the windows of the training curves
and early-stopped on those of the validation curves, exactly as the Astromer heads are.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.ensemble import RandomForestClassifier, StackingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .config import ForestSettings, GRUSettings, HybridSettings, ProbeSettings
from .training import FitHistory, fit_window_classifier, predict_windows

def random_forest(settings: ForestSettings, seed: int) -> Pipeline:
    """Median imputation (features that could not be computed) + random forest."""
    return Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("forest", RandomForestClassifier(n_estimators=settings.n_estimators,
                                          min_samples_leaf=settings.min_samples_leaf, n_jobs=settings.n_jobs,
                                          random_state=seed)),
    ])


def linear_probe(settings: ProbeSettings, seed: int) -> Pipeline:
    """Mean imputation (curves the embedding dropped) + standardisation + multinomial logistic regression.

    Standardising matters: pooled Astromer embeddings vary little from curve to curve compared with their offsets,
    so an unscaled linear model barely moves from the class prior."""
    return Pipeline([
        ("impute", SimpleImputer(strategy="mean", keep_empty_features=True)),
        ("scale", StandardScaler()),
        ("logistic", LogisticRegression(C=settings.C, max_iter=settings.max_iter, random_state=seed)),
    ])


def stacked_hybrid(forest: ForestSettings, probe: ProbeSettings, n_features: int, seed: int,
                   max_folds: int = 5, min_class_count: int | None = None,
                   hybrid: HybridSettings | None = None) -> StackingClassifier:
    """The ``hybrid_rf`` classifier: stacking (Wolpert 1992, "Stacked generalization", Neural Networks 5, 241) of the
    :func:`random_forest` on the classical features and the :func:`linear_probe` on the Astromer embedding, with a
    multinomial logistic regression on their class probabilities (scikit-learn's ``StackingClassifier``).

    It reads one matrix per curve: the ``n_features`` classical features, then the embedding. The combining
    regression learns from out-of-fold probabilities (stratified folds, at most ``max_folds``, at most the smallest
    class's ``min_class_count``: each training curve's come from models that never saw it), so it learns how far to
    trust each model on curves they did not fit; the two models are then refitted on all the training curves. Its
    regularisation is chosen among ``hybrid.Cs`` (:class:`~astromer_hf.evaluation.config.HybridSettings`) by
    cross-validated log loss on those out-of-fold probabilities, in the same folds. (It was the probe's fixed
    ``C = 1``; on the simulator the cross-validation picks 10 to 32, the regression trusting the two models' sharper
    probabilities more, and scored as high or higher in every cell measured: docs/tutorials/embed_and_classify.md.)
    When the embedding carries no class information its probabilities get little weight and the hybrid stays near
    the features alone; when it carries what the features miss, the hybrid gains.

    Why not the concatenation in one forest: a random forest draws its split candidates at random, and next to a
    few dozen informative classical features 256 weakly informative embedding channels dilute them (measured on the
    simulator: the concatenation scores below the classical features alone)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    hybrid = HybridSettings() if hybrid is None else hybrid

    folds = max_folds if min_class_count is None else min(max_folds, int(min_class_count))
    if folds < 2:
        raise ValueError(f"hybrid_rf stacks out-of-fold predictions and needs at least 2 training curves in every "
                         f"class, got {min_class_count}")

    def columns(name: str, selection: slice) -> ColumnTransformer:
        return ColumnTransformer([(name, "passthrough", selection)])

    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)  # the out-of-fold predictions' and the C search's

    return StackingClassifier(
        [("features", Pipeline([("columns", columns("features", slice(0, n_features))),
                                ("forest", random_forest(forest, seed))])),
         ("astromer", Pipeline([("columns", columns("embedding", slice(n_features, None))),
                                ("probe", linear_probe(probe, seed))]))],
        final_estimator=GridSearchCV(LogisticRegression(max_iter=probe.max_iter, random_state=seed),
                                     {"C": [float(value) for value in hybrid.Cs]}, scoring="neg_log_loss", cv=cv),
        cv=cv, stack_method="predict_proba",
    )


def class_log_probabilities(pipeline: Pipeline, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n, n_classes)`` log-probabilities of a fitted classifier, with a column for every class (a class absent
    from the training labels gets probability 0)."""
    probabilities = np.zeros((len(X), n_classes))
    probabilities[:, pipeline.classes_.astype(int)] = pipeline.predict_proba(X)
    return np.log(np.clip(probabilities, 1e-12, None))


class RawGRU(torch.nn.Module):
    """GRU over ``(B, T, 3)`` window inputs (padding after each window's real observations), then ReLU MLP layers
    and a linear output layer on the last state of the top GRU layer."""

    def __init__(self, n_classes: int, settings: GRUSettings, n_inputs: int = 3) -> None:
        super().__init__()
        self.gru = torch.nn.GRU(n_inputs, settings.hidden_size, num_layers=settings.num_layers, batch_first=True)
        layers: list[torch.nn.Module] = []
        width = settings.hidden_size
        for size in settings.mlp_sizes:
            layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
            width = size
        layers.append(torch.nn.Linear(width, n_classes))
        self.head = torch.nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = torch.nn.utils.rnn.pack_padded_sequence(inputs, lengths.cpu().clamp_min(1), batch_first=True,
                                                         enforce_sorted=False)
        _, last = self.gru(packed)
        return self.head(last[-1])


def gru_inputs(magnitudes: np.ndarray, times: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """float32 ``(W, T, 3)``: centred magnitude, centred time, log10 of the time step (all days; 0 at padding)."""
    real = attention_mask.astype(bool)
    steps = np.diff(times, axis=1, prepend=times[:, :1])
    steps[:, 0] = 1e-3
    log_step = np.log10(np.clip(steps, 1e-3, None))
    stacked = np.stack([magnitudes, times, log_step], axis=-1).astype(np.float32)
    stacked[~real] = 0.0
    return stacked


def train_raw_gru(
    inputs: np.ndarray, lengths: np.ndarray, labels: np.ndarray, train_rows: np.ndarray, val_rows: np.ndarray,
    n_classes: int, settings: GRUSettings, *, seed: int, device: torch.device,
) -> tuple[RawGRU, FitHistory, np.ndarray, np.ndarray]:
    """Train a :class:`RawGRU` on the windows ``train_rows`` (early-stopped on ``val_rows``).

    Returns the model, its history and the standardisation (mean, std per input channel) fitted on the training
    windows, to apply with :func:`gru_logits`."""
    real = np.arange(inputs.shape[1])[None, :] < lengths[train_rows, None]
    observed = inputs[train_rows][real]
    mean, std = observed.mean(axis=0), observed.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    torch.manual_seed(seed)
    model = RawGRU(n_classes, settings).to(device)
    standardised = torch.from_numpy(((inputs - mean) / std).astype(np.float32)).to(device)
    lengths_t = torch.from_numpy(lengths.astype(np.int64))
    labels_t = torch.from_numpy(labels.astype(np.int64)).to(device)
    train_t, val_t = torch.from_numpy(train_rows), torch.from_numpy(val_rows)

    def logits_of(rows_of_set: torch.Tensor):
        def logits(rows: torch.Tensor, training: bool) -> torch.Tensor:
            selected = rows_of_set[rows.cpu()]
            length = lengths_t[selected]
            return model(standardised[selected.to(device), : int(length.max())], length)
        return logits

    history = fit_window_classifier(model, logits_of(train_t), labels_t[train_t.to(device)], logits_of(val_t),
                                    labels_t[val_t.to(device)], settings, seed=seed)
    return model, history, mean, std


def gru_logits(model: RawGRU, inputs: np.ndarray, lengths: np.ndarray, rows: np.ndarray, mean: np.ndarray,
               std: np.ndarray, device: torch.device, batch_size: int = 1024) -> np.ndarray:
    """Window logits ``(len(rows), C)`` of a trained GRU."""
    standardised = torch.from_numpy(((inputs[rows] - mean) / std).astype(np.float32)).to(device)
    length = torch.from_numpy(lengths[rows].astype(np.int64))

    def logits(batch: torch.Tensor, training: bool) -> torch.Tensor:
        batch_length = length[batch.cpu()]
        return model(standardised[batch, : int(batch_length.max())], batch_length)

    return predict_windows(model, logits, len(rows), batch_size, device).cpu().numpy()
