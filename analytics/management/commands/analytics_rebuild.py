"""Rebuild the analytics rollups set-based (an install with existing history, after an import or a full sync)."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from analytics.rollups import rollups_rebuild


class Command(BaseCommand):
    help = "Rebuild customer facts and every analytics rollup (or only what changed since --since)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", help="only contacts with events or orders since this day (YYYY-MM-DD)")

    def handle(self, *args, since: str | None = None, **options) -> None:
        try:
            day = date.fromisoformat(since) if since else None
        except ValueError as exc:
            raise CommandError("--since is a day like 2026-03-01") from exc
        result = rollups_rebuild(since=day)
        self.stdout.write(f"analytics rebuilt in {result['seconds']} s ({result['campaigns']} campaigns)")
