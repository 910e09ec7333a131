import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from contacts.sync import corp_sync_from_wecom
from wecom.errors import WeComConfigError, WeComError


class Command(BaseCommand):
    help = "Read staff, customers, follow relations and customer groups from WeCom into the database."

    def add_arguments(self, parser):
        parser.add_argument("--corp-id", default=settings.WECOM_CORP_ID, help="defaults to WECOM_CORP_ID")

    def handle(self, *args, corp_id: str, **options):
        if not corp_id:
            raise CommandError("WECOM_CORP_ID is not set")
        last_stage = [""]

        def progress(stage: str, done: int, total: int | None) -> None:
            if stage != last_stage[0] and last_stage[0]:
                self.stdout.write("")
            last_stage[0] = stage
            suffix = f"/{total}" if total else ""
            self.stdout.write(f"\r{stage}: {done}{suffix}", ending="")
            self.stdout.flush()

        try:
            report = corp_sync_from_wecom(corp_id=corp_id, progress=progress if sys.stdout.isatty() else
                                          _lines(self.stdout))
        except WeComConfigError as exc:
            raise CommandError(str(exc)) from exc
        except WeComError as exc:
            raise CommandError(f"WeCom refused: errcode={exc.code} {exc.message} (api {exc.api})") from exc
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(
            f"synced {report.staff} staff, {report.contacts} customers, {report.relations} follow relations "
            f"({report.relations_closed} closed), {report.groups} groups"
        ))


def _lines(out):
    counters: dict[str, int] = {}

    def progress(stage: str, done: int, total: int | None) -> None:
        # one line per stage step of 10% (or every 500 items when the total is unknown)
        step = max(1, (total or 5000) // 10)
        if done - counters.get(stage, -step) >= step or (total and done == total):
            counters[stage] = done
            out.write(f"{stage}: {done}{'/' + str(total) if total else ''}")

    return progress
