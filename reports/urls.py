from django.urls import path

from reports import run_views, views

app_name = "reports"

urlpatterns: list = [
    path("sessions/<str:session_id>/report", views.SessionReportView.as_view(), name="session-report"),
    path("agents/<str:agent_id>/report", views.AgentReportView.as_view(), name="agent-report"),
    path("reports", views.AccountReportView.as_view(), name="account-report"),
    path("report-runs", run_views.RunListView.as_view(), name="report-runs"),
    path("report-runs/<str:run_id>", run_views.RunDetailView.as_view(), name="report-run"),
    path("report-runs/<str:run_id>/files/<str:name>", run_views.RunFileView.as_view(), name="report-run-file"),
    path("schemas/masker-audit-v1.json", views.AuditSchemaView.as_view(), name="audit-schema"),
]
