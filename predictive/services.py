"""Retraining: extract three feature sets, fit or fall back per model kind, score everyone, store the runs.

Windows, for a run at ``at``:
  training  features as of at − 60 d, labels over (at − 60 d, at − 30 d]
  holdout   features as of at − 30 d, labels over (at − 30 d, at]      → the AUC shown on the page
  scoring   features as of at; the model is refit on the holdout window (the latest labelled one), so the
            scores use the freshest history while the AUC measures the same recipe one window earlier.
"""

import logging
import resource
import time
from datetime import datetime, timedelta

import numpy as np
from django.db import connection, transaction

from contacts.models import Corp
from predictive import training
from predictive.features import FEATURES, WINDOW_DAYS, FeatureSet, features_extract
from predictive.models import ModelRun
from predictive.scoring import predictive_rules_recompute, scores_write
from scrm.clock import now
from scrm.errors import ApplicationError

logger = logging.getLogger(__name__)

DEFAULT_SEED = 7
_LOCK_BASE = 0x5052_4544_0000  # advisory lock namespace "PRED" + corp id


def _peak_rss_mb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux reports KiB


def _model_run(*, corp: Corp, kind: str, at: datetime, seed: int, train: FeatureSet, test: FeatureSet,
               current: FeatureSet) -> tuple[ModelRun, np.ndarray]:
    label = training.KINDS[kind]
    train_y, test_y = train.label(label), test.label(label)
    run = ModelRun(corp=corp, kind=kind, cutoff=train.at, test_cutoff=test.at, trained_at=at, seed=seed,
                   n_train=train.size, n_test=test.size, positives=int(train_y.sum()),
                   test_positives=int(test_y.sum()), features=list(FEATURES), n_scored=current.size)
    run.heuristic_reason = training.heuristic_reason(n_train=train.size, train_y=train_y, test_y=test_y)
    if run.heuristic_reason:
        run.method = ModelRun.Method.HEURISTIC
        run.auc = training.auc(test_y, training.heuristic_score(kind, test.raw))
        return run, training.heuristic_score(kind, current.raw)
    run.method = ModelRun.Method.MODEL
    holdout = training.model_fit(raw=train.raw, y=train_y, seed=seed)
    run.auc = training.auc(test_y, training.model_score(holdout, test.raw))
    fitted = training.model_fit(raw=test.raw, y=test_y, seed=seed)
    run.coefficients, run.intercept = list(fitted.coefficients), fitted.intercept
    run.means, run.stds = list(fitted.means), list(fitted.stds)
    return run, training.model_score(fitted, current.raw)


def models_retrain(*, corp: Corp, at: datetime | None = None, seed: int = DEFAULT_SEED) -> list[ModelRun]:
    """Train both models (or their heuristics), write every customer's scores, recompute predictive tag rules."""
    at = at or now()
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_BASE + corp.pk])
        if not cur.fetchone()[0]:
            raise ApplicationError("Predictive models are already being trained for this corp.")
    try:
        started = time.monotonic()
        window = timedelta(days=WINDOW_DAYS)
        train = features_extract(corp_id=corp.pk, at=at - 2 * window, labels=True)
        test = features_extract(corp_id=corp.pk, at=at - window, labels=True)
        current = features_extract(corp_id=corp.pk, at=at, labels=False)
        runs, scores = [], {}
        for kind in training.KINDS:
            run, scores[kind] = _model_run(corp=corp, kind=kind, at=at, seed=seed, train=train, test=test,
                                           current=current)
            runs.append(run)
        scores_write(corp_id=corp.pk, contact_ids=current.contact_ids, churn=scores["churn"],
                     propensity=scores["propensity"], at=at)
        duration_ms, peak = int((time.monotonic() - started) * 1000), _peak_rss_mb()
        with transaction.atomic():
            for run in runs:
                run.duration_ms, run.peak_memory_mb = duration_ms, peak
                run.save()
        predictive_rules_recompute(corp_id=corp.pk)
    finally:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_BASE + corp.pk])
    for run in runs:
        logger.info("predictive model trained corp_id=%s kind=%s method=%s n_train=%s auc=%s duration_ms=%s",
                    corp.pk, run.kind, run.method, run.n_train, run.auc, run.duration_ms)
    return runs


def models_retrain_all(*, seed: int = DEFAULT_SEED) -> int:
    """Nightly: every corp with customers."""
    count = 0
    for corp in Corp.objects.order_by("pk"):
        models_retrain(corp=corp, seed=seed)
        count += 1
    return count
