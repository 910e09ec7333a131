"""Train the predictive models now and print the figures: ``manage.py predictive_train [--corp wwID] [--seed 7]``."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from contacts.models import Corp
from predictive.services import DEFAULT_SEED, models_retrain
from scrm.errors import ApplicationError


class Command(BaseCommand):
    help = "Train churn risk and purchase propensity, score every customer, recompute predictive tag rules."

    def add_arguments(self, parser):
        parser.add_argument("--corp", help="corp id (default: every corp)")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED)

    def handle(self, *args, corp=None, seed=DEFAULT_SEED, **options):
        corps = Corp.objects.order_by("pk")
        if corp:
            corps = corps.filter(corp_id=corp)
            if not corps.exists():
                raise CommandError(f"no corp {corp!r}")
        for item in corps:
            try:
                runs = models_retrain(corp=item, seed=seed)
            except ApplicationError as exc:
                raise CommandError(str(exc)) from exc
            for run in runs:
                auc = f"{run.auc:.3f}" if run.auc is not None else "n/a"
                self.stdout.write(
                    f"{item.corp_id} {run.kind:<10} {run.method:<9} cutoff={timezone.localtime(run.cutoff):%Y-%m-%d} "
                    f"train={run.n_train} (+{run.positives}) holdout={run.n_test} (+{run.test_positives}) "
                    f"auc={auc} scored={run.n_scored} {run.duration_ms} ms peak={run.peak_memory_mb} MB"
                    + (f" heuristic: {run.heuristic_reason}" if run.heuristic_reason else ""))
