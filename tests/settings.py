"""Test settings: the real settings, with a fast password hasher and a throwaway signing-key directory."""

import os
import tempfile

os.environ.setdefault("MASKER_SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("MASKER_KEYS_DIR", tempfile.mkdtemp(prefix="masker-test-keys-"))
os.environ.setdefault("MASKER_CREATE_DEV_KEY", "1")

from masker.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not shared-cache memory: concurrent and live-server tests then lock like production SQLite does.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"masker-test-{os.getpid()}.sqlite3")
    }
