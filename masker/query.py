"""Query strings are checked as strictly as bodies: an unknown parameter or a repeated single-valued one is a 400
``validation_failed`` naming it, never silently ignored (a misspelt filter would otherwise return the whole list)."""

import re
from collections.abc import Iterable, Mapping

from rest_framework import serializers

from masker.errors import ValidationFailed

_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def check_query_params(query_params: Mapping, allowed: Iterable[str]) -> None:
    """Raise ``ValidationFailed`` if ``query_params`` (a QueryDict) holds a name not in ``allowed`` or one twice.

    ``details.fields`` names each offending parameter (a name that is not identifier-like is not echoed)."""
    allowed = set(allowed)
    fields: dict[str, list[str]] = {}
    for name in sorted(query_params):
        shown = name if _SAFE_NAME.match(name) else "<unexpected parameter>"
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            fields[shown] = [f"unknown query parameter (this endpoint takes: {known})"]
        elif len(query_params.getlist(name)) > 1:
            fields[shown] = ["given more than once; give it once"]
    if fields:
        raise ValidationFailed("Unknown or repeated query parameter(s).", details={"fields": fields})


class QuerySerializer(serializers.Serializer):
    """A query-string serializer that refuses parameters it does not declare and repeated ones."""

    def to_internal_value(self, data):
        if hasattr(data, "getlist"):
            check_query_params(data, self.fields)
        return super().to_internal_value(data)
