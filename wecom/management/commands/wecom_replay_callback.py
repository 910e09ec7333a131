from django.core.management.base import BaseCommand, CommandError

from wecom.models import CallbackEvent
from wecom.services import callback_event_replay


class Command(BaseCommand):
    help = "Process a stored WeCom callback event again (idempotent), whatever its status."

    def add_arguments(self, parser):
        parser.add_argument("event_ids", nargs="+", type=int)

    def handle(self, *args, event_ids: list[int], **options):
        for event_id in event_ids:
            if not CallbackEvent.objects.filter(pk=event_id).exists():
                raise CommandError(f"no callback event {event_id}")
            try:
                status = callback_event_replay(event_id=event_id)
            except Exception as exc:
                raise CommandError(f"event {event_id} failed: {exc}") from exc
            self.stdout.write(f"event {event_id}: {status}")
