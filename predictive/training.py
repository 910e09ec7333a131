"""Fitting, scoring and explaining (pure: numpy and scikit-learn in, numbers out; no ORM, no clock).

The model is a logistic regression on standardised features (z = (x − mean) / std), fitted with lbfgs, which is
deterministic; ``seed`` is passed as ``random_state`` all the same. One customer's reasons are the features with
the largest positive contributions coef × z to the log-odds.

With too little history (fewer than ``MIN_LABELLED`` labelled customers, or one class only) a transparent
heuristic replaces the model; its score is a sum of terms over the same features, so reasons work alike:

  churn      = 0.6 × min(days since last activity, 60) / 60 + 0.4 × [no events in the last 30 days]
  propensity = 0.5 × min(orders, 3) / 3 + 0.5 × max(0, 1 − days since last order / 90)
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from predictive.features import FEATURES, design_matrix

MIN_LABELLED = 500
KINDS = {"churn": "churn", "propensity": "purchase"}  # model kind → label column


@dataclass(frozen=True)
class Fitted:
    coefficients: tuple[float, ...]
    intercept: float
    means: tuple[float, ...]
    stds: tuple[float, ...]


def _column(name: str) -> int:
    return FEATURES.index(name)


def model_fit(*, raw: np.ndarray, y: np.ndarray, seed: int) -> Fitted:
    x = design_matrix(raw)
    means = x.mean(axis=0)
    stds = x.std(axis=0)
    stds[stds == 0] = 1.0
    x -= means
    x /= stds
    model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    model.fit(x, y)
    return Fitted(coefficients=tuple(float(c) for c in model.coef_[0]), intercept=float(model.intercept_[0]),
                  means=tuple(float(m) for m in means), stds=tuple(float(s) for s in stds))


def contributions(fitted: Fitted, raw: np.ndarray) -> np.ndarray:
    """coef × z per customer and feature: the log-odds each feature adds."""
    z = (design_matrix(raw) - np.asarray(fitted.means)) / np.asarray(fitted.stds)
    z *= np.asarray(fitted.coefficients)
    return z


def model_score(fitted: Fitted, raw: np.ndarray, *, chunk: int = 200_000) -> np.ndarray:
    """Probabilities, computed in chunks so a million customers never need a second full-size matrix."""
    out = np.empty(raw.shape[0], dtype=np.float64)
    for start in range(0, raw.shape[0], chunk):
        logit = contributions(fitted, raw[start:start + chunk]).sum(axis=1) + fitted.intercept
        out[start:start + chunk] = expit(logit)
    return out


def auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when the holdout has one class only (AUC is undefined then)."""
    if y.size == 0 or y.min() == y.max():
        return None
    return float(roc_auc_score(y, scores))


def heuristic_reason(*, n_train: int, train_y: np.ndarray, test_y: np.ndarray) -> str:
    """Why the model cannot be trained ("" when it can)."""
    if n_train < MIN_LABELLED:
        return "too_few"
    if train_y.min() == train_y.max() or test_y.size == 0 or test_y.min() == test_y.max():
        return "one_class"
    return ""


def heuristic_terms(kind: str, raw: np.ndarray) -> np.ndarray:
    """The heuristic's terms per customer, one column per feature (zeros for the features it does not use)."""
    terms = np.zeros_like(raw, dtype=np.float64)
    if kind == "churn":
        idle = raw[:, _column("days_since_activity")]
        terms[:, _column("days_since_activity")] = 0.6 * np.minimum(idle, 60.0) / 60.0
        terms[:, _column("events_30d")] = 0.4 * (raw[:, _column("events_30d")] == 0)
    else:
        orders = raw[:, _column("order_count")]
        since = raw[:, _column("days_since_order")]
        terms[:, _column("order_count")] = 0.5 * np.minimum(orders, 3.0) / 3.0
        terms[:, _column("days_since_order")] = 0.5 * np.clip(1.0 - since / 90.0, 0.0, 1.0) * (orders > 0)
    return terms


def heuristic_score(kind: str, raw: np.ndarray) -> np.ndarray:
    return np.clip(heuristic_terms(kind, raw).sum(axis=1), 0.0, 1.0)


def top_reasons(values: np.ndarray, limit: int = 3) -> list[int]:
    """Indexes of the largest positive values (ties: feature order), at most ``limit``."""
    order = sorted((i for i in range(values.shape[0]) if values[i] > 1e-9), key=lambda i: (-values[i], i))
    return order[:limit]
