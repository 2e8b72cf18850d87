"""Test settings: the real settings, with a fast password hasher and a throwaway signing-key directory.

No `.env` is read (MASKER_ENV_FILE empty): a developer's `make run` configuration must not change the tests.
Every temporary file made here is removed when the test process exits.
"""

import atexit
import os
import shutil
import tempfile

os.environ["MASKER_ENV_FILE"] = ""
os.environ.setdefault("MASKER_SECRET_KEY", "test-only-secret-key")
if "MASKER_KEYS_DIR" not in os.environ:
    _keys_dir = tempfile.mkdtemp(prefix="masker-test-keys-")
    atexit.register(shutil.rmtree, _keys_dir, ignore_errors=True)
    os.environ["MASKER_KEYS_DIR"] = _keys_dir
os.environ.setdefault("MASKER_CREATE_DEV_KEY", "1")

from masker.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not shared-cache memory: concurrent and live-server tests then lock like production SQLite does.
    # Django deletes it when the test database is destroyed.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"masker-test-{os.getpid()}.sqlite3")
    }
