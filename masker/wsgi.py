"""WSGI entry point (gunicorn masker.wsgi)."""

import io
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "masker.settings")
django_application = get_wsgi_application()


def application(environ, start_response):
    """Django reads a request body only up to ``Content-Length``; a chunked body has none and would read as empty.
    Gunicorn de-chunks it and marks the stream ``wsgi.input_terminated``: read it here, at most one byte more
    than the body limit, and hand Django a stream with a length (over the limit, Django answers 413)."""
    if environ.get("wsgi.input_terminated") and not environ.get("CONTENT_LENGTH"):
        body = environ["wsgi.input"].read(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
        if body:
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
    return django_application(environ, start_response)
