"""Stage-1 classifiers over prompt embeddings, behind a registry (name -> builder, lazily imported).

The router acts on ``predict_proba`` (a top probability below the tuned threshold falls back to the
general expert), so every entry must give probabilities that mean something:

- ``logreg`` (default): multinomial logistic regression; its softmax probabilities are used as they
  are. LR minimises log-loss, so they are close to calibrated already, and a second calibration fit
  would cost training data for little gain. Its regularisation C is chosen by 5-fold log-loss on the
  training split: the best C differs by embedder (3 for MiniLM, 10 for static here) and a fixed C
  cost 4 points of held-out accuracy on one of them.
- ``knn``: cosine k-NN. Raw neighbour vote fractions are coarse (multiples of 1/k) and
  over-confident, so it is wrapped in ``CalibratedClassifierCV`` (sigmoid, 5-fold).
- ``mlp``: one hidden layer. Neural nets trained to zero training loss are over-confident, so it
  is also wrapped in ``CalibratedClassifierCV`` (sigmoid, 5-fold).

Calibration uses cross-validation inside the training split on purpose: the calibration split is
kept for tuning the fallback threshold, and fitting both on it would overfit the threshold.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from coe.errors import UserInputError

DEFAULT_CLASSIFIER = "logreg"


class UnknownClassifier(UserInputError, KeyError):
    """The config or CLI named a classifier that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def _logreg(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegressionCV

    return LogisticRegressionCV(
        Cs=(0.3, 1.0, 3.0, 10.0, 30.0),
        cv=5,
        scoring="neg_log_loss",
        l1_ratios=(0.0,),  # plain L2; explicit to keep sklearn 1.9's FutureWarnings quiet
        use_legacy_attributes=False,
        max_iter=3000,
        random_state=seed,
    )


def _knn(seed: int) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=15, weights="distance", metric="cosine")
    return CalibratedClassifierCV(knn, method="sigmoid", cv=5)


def _mlp(seed: int) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.neural_network import MLPClassifier

    mlp = MLPClassifier(
        hidden_layer_sizes=(256,), alpha=1e-3, max_iter=300, early_stopping=True, random_state=seed
    )
    return CalibratedClassifierCV(mlp, method="sigmoid", cv=5)


_REGISTRY: dict[str, Callable[[int], Any]] = {"logreg": _logreg, "knn": _knn, "mlp": _mlp}


def list_registered() -> list[str]:
    """Names accepted by :func:`build_classifier` and :func:`train_classifier`."""
    return sorted(_REGISTRY)


def build_classifier(name: str, seed: int = 0) -> Any:
    """An unfitted scikit-learn estimator with ``predict_proba``."""
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise UnknownClassifier(
            f"unknown classifier {name!r}; registered: {', '.join(list_registered())}"
        ) from None
    return builder(seed)


def train_classifier(name: str, X: np.ndarray, y: list[str] | np.ndarray, seed: int = 0) -> Any:
    """Fit the named classifier; the fitted estimator's ``classes_`` order its probability columns."""
    return build_classifier(name, seed).fit(np.asarray(X, dtype=np.float32), np.asarray(y))
