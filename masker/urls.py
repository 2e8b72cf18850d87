"""Site URLs. Each app owns its own namespaced URLconf."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("masker.api_urls")),
    path("api/v1/", include("audit.urls")),
    path("api/v1/", include("reports.urls")),
    path("api/v1/schema", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("api/v1/docs", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="swagger-ui"),
    path("", include("reports.console_urls")),
]

handler404 = "masker.views.not_found"
handler500 = "masker.views.server_error"
