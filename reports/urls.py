from django.urls import path

from reports import views

app_name = "reports"

urlpatterns: list = [
    path("sessions/<str:session_id>/report", views.SessionReportView.as_view(), name="session-report"),
    path("agents/<str:agent_id>/report", views.AgentReportView.as_view(), name="agent-report"),
    path("reports", views.AccountReportView.as_view(), name="account-report"),
    path("schemas/masker-audit-v1.json", views.AuditSchemaView.as_view(), name="audit-schema"),
]
