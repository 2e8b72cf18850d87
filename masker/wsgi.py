"""WSGI entry point (gunicorn masker.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "masker.settings")
application = get_wsgi_application()
