"""Recompute the tag index and the tag bitmaps from ContactTag (the source of truth). A support tool.

    manage.py tag_index_rebuild               # everything
    manage.py tag_index_rebuild --tag 12 --tag 13   # only these tags' bitmaps
"""

from django.core.management.base import BaseCommand

from tagging.bitmaps import tag_bitmaps_rebuild
from tagging.services import tag_index_rebuild


class Command(BaseCommand):
    help = "Recompute the tag index and tag bitmaps from the tag assignments."

    def add_arguments(self, parser):
        parser.add_argument("--tag", type=int, action="append", dest="tags", help="only this tag's bitmap")

    def handle(self, *args, tags, **options):
        if tags:
            done = tag_bitmaps_rebuild(tag_ids=tags)
            self.stdout.write(f"rebuilt {done} tag bitmap(s)")
            return
        tag_index_rebuild()
        self.stdout.write("rebuilt the tag index and every tag bitmap")
