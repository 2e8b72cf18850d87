from django.urls import path

from reports import views

app_name = "reports"

urlpatterns: list = [
    path("sessions/<str:session_id>/report", views.SessionReportView.as_view(), name="session-report"),
    path("schemas/masker-audit-v1.json", views.AuditSchemaView.as_view(), name="audit-schema"),
]
