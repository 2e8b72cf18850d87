from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


class MaskerConfig(AppConfig):
    name = "masker"
    verbose_name = "Masker"

    def ready(self) -> None:
        # The working folders the settings name (the default SQLite file's, collected static files): made when the
        # service starts, so importing the settings has no side effect.
        for folder in (settings.VAR_DIR, settings.STATIC_ROOT):
            Path(folder).mkdir(parents=True, exist_ok=True)
