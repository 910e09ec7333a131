"""The due index moves from a partial index on the enrollment to the narrow table ``journeys_enrollmentdue``,
kept by statement-level triggers (see ``journeys.models.EnrollmentDue``); the enrollment table keeps free space
on its pages so that advancing a step is a HOT update."""

import django.db.models.deletion
from django.db import migrations, models


DUE_SYNC = """
CREATE FUNCTION journeys_enrollment_due_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Statement-level: the changed enrollments arrive as transition tables (old_rows / new_rows), so a batch
    -- of any size costs two set-based statements here, not a call per row.
    IF TG_OP = 'DELETE' THEN
        DELETE FROM journeys_enrollmentdue WHERE enrollment_id = ANY(ARRAY(SELECT id FROM old_rows));
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- = ANY(ARRAY(...)): one probe of the primary key per row, whatever the planner thinks of a join with
        -- the whole (possibly large) due table
        DELETE FROM journeys_enrollmentdue WHERE enrollment_id = ANY(ARRAY(
            SELECT id FROM new_rows WHERE status <> 'active' OR next_run_at IS NULL));
        INSERT INTO journeys_enrollmentdue (enrollment_id, next_run_at)
        SELECT n.id, n.next_run_at FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
         WHERE n.status = 'active' AND n.next_run_at IS NOT NULL
           AND (o.id IS NULL OR o.status <> 'active' OR o.next_run_at IS DISTINCT FROM n.next_run_at)
        ON CONFLICT (enrollment_id) DO UPDATE SET next_run_at = EXCLUDED.next_run_at;
        RETURN NULL;
    END IF;
    INSERT INTO journeys_enrollmentdue (enrollment_id, next_run_at)
    SELECT n.id, n.next_run_at FROM new_rows n WHERE n.status = 'active' AND n.next_run_at IS NOT NULL
    ON CONFLICT (enrollment_id) DO UPDATE SET next_run_at = EXCLUDED.next_run_at;
    RETURN NULL;
END $$;
CREATE TRIGGER enrollment_due_insert AFTER INSERT ON journeys_enrollment
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION journeys_enrollment_due_sync();
CREATE TRIGGER enrollment_due_update AFTER UPDATE ON journeys_enrollment
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION journeys_enrollment_due_sync();
CREATE TRIGGER enrollment_due_delete AFTER DELETE ON journeys_enrollment
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION journeys_enrollment_due_sync();
INSERT INTO journeys_enrollmentdue (enrollment_id, next_run_at)
SELECT id, next_run_at FROM journeys_enrollment WHERE status = 'active' AND next_run_at IS NOT NULL;
ALTER TABLE journeys_enrollment SET (fillfactor = 70);
"""

DUE_SYNC_REVERSE = """
DROP TRIGGER enrollment_due_insert ON journeys_enrollment;
DROP TRIGGER enrollment_due_update ON journeys_enrollment;
DROP TRIGGER enrollment_due_delete ON journeys_enrollment;
DROP FUNCTION journeys_enrollment_due_sync();
ALTER TABLE journeys_enrollment RESET (fillfactor);
"""


class Migration(migrations.Migration):

    dependencies = [
        ('contacts', '0008_contact_own_zone'),
        ('journeys', '0003_outbox_no_enrollment_index'),
    ]

    operations = [
        migrations.CreateModel(
            name='EnrollmentDue',
            fields=[
                ('enrollment', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='+', serialize=False, to='journeys.enrollment')),
                ('next_run_at', models.DateTimeField()),
            ],
        ),
        migrations.RemoveIndex(
            model_name='enrollment',
            name='enrollment_due',
        ),
        migrations.RemoveIndex(
            model_name='enrollment',
            name='enrollment_contact',
        ),
        migrations.AddIndex(
            model_name='enrollment',
            index=models.Index(fields=['contact'], name='enrollment_contact'),
        ),
        migrations.AddIndex(
            model_name='enrollmentdue',
            index=models.Index(fields=['next_run_at'], name='enrollment_due'),
        ),
        migrations.RunSQL(DUE_SYNC, DUE_SYNC_REVERSE),
    ]
