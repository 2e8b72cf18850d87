"""What every API view shares: the base view and the one way a view checks its input.

- ``ApiView``: the operation's scope (``HasScope``: ``required_scope`` or ``required_scopes`` per method), and the
  body-size limit for writes. Reading ``request.body`` makes Django enforce ``DATA_UPLOAD_MAX_MEMORY_SIZE`` from the
  Content-Length before anything is read (``RequestDataTooBig`` → 413 ``payload_too_large``); DRF's JSON parser
  reads the stream without that check, hence the hook. It runs after authentication, permissions and throttling,
  so an anonymous or over-limit caller's body is never read. Public views set ``permission_classes = [AllowAny]``.
- ``validated(serializer_class, data)``: the serializer's validated data, or the 400 ``validation_failed`` naming
  every bad field.
- Caching is not a view's business: ``masker.middleware.NoStoreMiddleware`` marks every answer ``no-store``.
"""

from typing import Any

from rest_framework import serializers
from rest_framework.views import APIView

from masker.auth import HasScope
from masker.errors import ValidationFailed


class ApiView(APIView):
    permission_classes = [HasScope]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            _ = request._request.body


def validated(serializer_class: type[serializers.Serializer], data: Any, *, context: dict | None = None) -> Any:
    serializer = serializer_class(data=data, context=context or {})
    if not serializer.is_valid():
        raise ValidationFailed(details={"fields": serializer.errors})
    return serializer.validated_data
