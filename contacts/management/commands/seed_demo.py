import os

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from contacts.demo import demo_orders_load, demo_world_load
from contacts.services import corp_get_or_create

DEFAULT_CORP = "wwSIMCORP00000001"


class Command(BaseCommand):
    help = "Load demo data (a corp, 5 staff, 200 customers, 5 groups, logins). Safe to run again."

    def handle(self, *args, **options):
        password = os.environ.get("DEMO_PASSWORD", "demo1234")
        with transaction.atomic():
            corp = corp_get_or_create(corp_id=settings.WECOM_CORP_ID or DEFAULT_CORP)
            if not corp.name:
                corp.name = "演示企业"
                corp.save(update_fields=["name"])
            counts = demo_world_load(corp=corp)
            orders = demo_orders_load(corp=corp)
            from journeys.presets import presets_demo_install

            presets_demo_install(corp=corp)  # ready-made journeys (drafts; the message line live)
            from tagging.recompute import tag_rule_presets_install, tag_rule_recompute

            rules = [rule for preset in ("channel_sources", "repeat_buyer", "dormant_30d", "predictive")
                     for rule in tag_rule_presets_install(corp=corp, preset=preset)]
            logins = [
                ("admin", User.Role.ADMIN, None, True),
                ("operator", User.Role.OPERATOR, None, False),
                ("guide", User.Role.GUIDE, corp.staff.get(userid="zhangwei"), False),
            ]
            for username, role, staff, superuser in logins:
                user, created = User.objects.get_or_create(
                    username=username,
                    defaults={"role": role, "staff": staff, "is_superuser": superuser, "is_staff": superuser},
                )
                if created:
                    user.set_password(password)
                    user.save()
        for rule in rules:  # ready-made tag rules, applied now so the tag board is not empty
            tag_rule_recompute(rule_id=rule.pk)
        # Dashboards and predictive scores for the demo right away (beat would do it within the minute / night).
        from analytics.rollups import rollups_rebuild
        from contacts.business import contacts_rfm_score
        from predictive.services import models_retrain

        contacts_rfm_score()  # the nightly RFM scoring, so the RFM grid has cells
        rollups_rebuild(since=None)
        models_retrain(corp=corp)
        self.stdout.write(self.style.SUCCESS(
            f"demo data ready: {counts['staff']} staff, {counts['contacts']} customers, {counts['groups']} groups, "
            f"{orders} new orders"
        ))
        self.stdout.write(f"logins (password {password!r} unless changed): admin (admin), operator (operator), "
                          f"guide (guide of 张伟)")
