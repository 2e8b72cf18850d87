"""Site URLs. Each app owns its own namespaced URLconf."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from masker import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("masker.api_urls")),
    path("api/v1/", include("audit.urls")),
    path("api/v1/", include("reports.urls")),
    path("api/v1/schema", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("api/v1/docs", SpectacularSwaggerSplitView.as_view(url_name="openapi-schema"), name="swagger-ui"),
    path("", include("reports.console_urls")),
]

handler400 = "masker.views.bad_request"
handler403 = "masker.views.permission_denied"
handler404 = "masker.views.not_found"
handler500 = "masker.views.server_error"
