from django.urls import path
from django.views.generic import RedirectView

from reports import console, console_period, console_runs

app_name = "console"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="console:sessions", permanent=False), name="home"),
    path("login/", console.ConsoleLoginView.as_view(), name="login"),
    path("logout/", console.logout_view, name="logout"),
    path("sessions/", console.session_list, name="sessions"),
    path("sessions/<str:session_id>/", console.session_detail, name="session"),
    path("agents/", console.agent_list, name="agents"),
    path("agents/<str:agent_id>/report/", console_period.agent_report, name="agent-report"),
    path("reports/account/", console_period.account_report, name="account-report"),
    path("reports/runs/", console_runs.run_list, name="runs"),
    path("reports/runs/<str:run_id>/", console_runs.run_detail, name="run"),
    path("reports/", console.report_list, name="reports"),
    path("reports.csv", console.report_list_csv, name="reports-csv"),
]
