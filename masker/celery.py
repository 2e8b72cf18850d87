"""The job engine: Celery (``celery -A masker worker``, ``celery -A masker beat``). Configuration comes from the
Django settings' ``CELERY_*`` names (masker/settings.py reads them from ``MASKER_BROKER_URL`` and friends); tasks
are found in each app's ``tasks`` module. No result backend: a task's outcome lives in our database."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "masker.settings")

app = Celery("masker")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
