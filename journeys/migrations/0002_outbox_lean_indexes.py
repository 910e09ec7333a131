"""The outbox's hot insert path writes fewer indexes and fires no FK checks (docs/scheduling.md)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('contacts', '0004_contactevent_ordered'),
        ('journeys', '0001_journeys_outbox_broadcasts'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='outboundmessage',
            name='outbound_task',
        ),
        migrations.AlterField(
            model_name='outboundmessage',
            name='broadcast',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='messages', to='journeys.broadcast'),
        ),
        migrations.AlterField(
            model_name='outboundmessage',
            name='contact',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='outbound_messages', to='contacts.contact'),
        ),
        migrations.AlterField(
            model_name='outboundmessage',
            name='idempotency_key',
            field=models.CharField(max_length=96),
        ),
        migrations.AlterField(
            model_name='outboundmessage',
            name='staff',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='outbound_messages', to='contacts.staff'),
        ),
        migrations.AddIndex(
            model_name='outboundmessage',
            index=models.Index(condition=models.Q(('task__isnull', False)), fields=['task', 'contact'], name='outbound_task_set'),
        ),
        migrations.AddIndex(
            model_name='outboundmessage',
            index=models.Index(condition=models.Q(('broadcast__isnull', False)), fields=['broadcast'], name='outbound_broadcast'),
        ),
        migrations.AddConstraint(
            model_name='outboundmessage',
            constraint=models.UniqueConstraint(fields=('idempotency_key',), name='outbound_unique_key'),
        ),
    ]
