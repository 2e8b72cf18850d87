"""Test settings: the real settings, with a fast password hasher and a throwaway signing-key directory.

No `.env` is read (MASKER_ENV_FILE empty): a developer's `make run` configuration must not change the tests.
Every temporary file made here is removed when the test process exits.
"""

import atexit
import os
import shutil
import tempfile
import uuid

os.environ["MASKER_ENV_FILE"] = ""
os.environ.setdefault("MASKER_SECRET_KEY", "test-only-secret-key")
if "MASKER_KEYS_DIR" not in os.environ:
    _keys_dir = tempfile.mkdtemp(prefix="masker-test-keys-")
    atexit.register(shutil.rmtree, _keys_dir, ignore_errors=True)
    os.environ["MASKER_KEYS_DIR"] = _keys_dir
os.environ.setdefault("MASKER_CREATE_DEV_KEY", "1")
# Report runs: files and (without a broker server) the broker's folder in throwaway folders, and a queue of this
# test process's own, so workers of parallel test runs never take each other's tasks.
if "MASKER_RUN_FILES_DIR" not in os.environ:
    os.environ["MASKER_RUN_FILES_DIR"] = tempfile.mkdtemp(prefix="masker-test-run-files-")
    atexit.register(shutil.rmtree, os.environ["MASKER_RUN_FILES_DIR"], ignore_errors=True)
if "MASKER_BROKER_DIR" not in os.environ:
    os.environ["MASKER_BROKER_DIR"] = tempfile.mkdtemp(prefix="masker-test-broker-")
    atexit.register(shutil.rmtree, os.environ["MASKER_BROKER_DIR"], ignore_errors=True)
os.environ.setdefault("MASKER_RUN_QUEUE", f"masker-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
# On PostgreSQL the tests use Redis, the production broker (CI runs one at 127.0.0.1:6379).
if os.environ.get("DATABASE_URL", "").startswith("postgres") and "MASKER_BROKER_URL" not in os.environ:
    os.environ["MASKER_BROKER_URL"] = os.environ.get("MASKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

from masker.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not shared-cache memory: concurrent and live-server tests then lock like production SQLite does.
    # Django deletes it when the test database is destroyed.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"masker-test-{os.getpid()}.sqlite3")
    }
