"""Install the database guards that make audit events append-only (see audit/triggers.py)."""

from django.db import migrations

from audit import triggers


def install(apps, schema_editor):
    triggers.EVENTS.install(schema_editor.connection)


def remove(apps, schema_editor):
    triggers.EVENTS.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install, remove)]
