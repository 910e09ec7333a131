"""Customers whose last follow relation the full WeCom sync closed (``delete_source = 'missing_on_sync'``) count as
lost, "by unknown", dated by that sync. The new growth column, and every such contact marked dirty so that the next
rollup drain recomputes their facts and the days they fall on (nothing else has to be rebuilt)."""

from django.db import migrations, models

MARK_DIRTY = """
INSERT INTO analytics_dirtycontact (contact_id)
SELECT DISTINCT contact_id FROM contacts_followrelation WHERE delete_source = 'missing_on_sync' AND NOT is_active
ON CONFLICT DO NOTHING
"""


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0001_rollups"),
    ]

    operations = [
        migrations.AddField(
            model_name="dailygrowth",
            name="lost_by_unknown",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AlterField(
            model_name="customerfact",
            name="lost_by",
            field=models.CharField(blank=True, choices=[("customer", "Customer deleted the staff member"),
                                                        ("staff", "Staff member deleted the customer"),
                                                        ("unknown", "Unknown: found missing by a WeCom sync")],
                                   default="", max_length=8),
        ),
        migrations.RunSQL(MARK_DIRTY, migrations.RunSQL.noop),
    ]
