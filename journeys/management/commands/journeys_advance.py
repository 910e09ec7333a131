from django.core.management.base import BaseCommand

from journeys.scheduler import enrollments_advance_due


class Command(BaseCommand):
    help = "Advance due journey enrollments now (what the beat sweeper does every 15 s). Support tool."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one batch only")
        parser.add_argument("--batch", type=int, default=None)

    def handle(self, *args, **options):
        result = enrollments_advance_due(batch=options["batch"], max_batches=1 if options["once"] else None)
        self.stdout.write(f"claimed {result.claimed}, outbox rows {result.outbox}, "
                          f"sender hand-offs {len(result.groups)}, outcomes {dict(result.outcomes)}")
