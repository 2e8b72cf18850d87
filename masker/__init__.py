"""The site: settings, tenancy, errors, and the job engine's app (loaded with Django, so tasks queued by the web
process go to the configured broker)."""

from masker.celery import app as celery_app

__all__ = ["celery_app"]
