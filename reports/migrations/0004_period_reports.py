"""Period reports in the register: scope agent or account, the agent, the window; no session for those scopes.

The register's guard is taken down around the change and put back after it: on SQLite, altering a column rebuilds
the table, which drops its triggers (and the guard refuses the rebuild's copy of the rows)."""

import django.db.models.deletion
from django.db import migrations, models

from reports.models import REGISTER_GUARD


def lift_guard(apps, schema_editor):
    REGISTER_GUARD.remove(schema_editor.connection)


def restore_guard(apps, schema_editor):
    REGISTER_GUARD.remove(schema_editor.connection)  # none left after an SQLite rebuild; idempotent elsewhere
    REGISTER_GUARD.install(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_session_guard"),
        ("reports", "0003_register_guard"),
    ]

    operations = [
        migrations.RunPython(lift_guard, restore_guard),
        migrations.AddField(
            model_name="reportrecord",
            name="agent",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="report_records",
                to="audit.agent",
            ),
        ),
        migrations.AddField(model_name="reportrecord", name="window_from", field=models.DateTimeField(null=True)),
        migrations.AddField(model_name="reportrecord", name="window_to", field=models.DateTimeField(null=True)),
        migrations.AlterField(
            model_name="reportrecord",
            name="session",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="report_records",
                to="audit.session",
            ),
        ),
        migrations.RunPython(restore_guard, lift_guard),
    ]
