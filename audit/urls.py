from django.urls import path

from audit import evidence_views, views

app_name = "audit"

urlpatterns: list = [
    # Ingestion and read side.
    path("sessions", views.SessionListView.as_view(), name="session-list"),
    path("sessions/<str:session_id>", views.SessionDetailView.as_view(), name="session-detail"),
    path("sessions/<str:session_id>/events", views.SessionEventsView.as_view(), name="session-events"),
    path("sessions/<str:session_id>/end", views.SessionEndView.as_view(), name="session-end"),
    path("agents", views.AgentListView.as_view(), name="agent-list"),
    path("agents/<str:agent_id>", views.AgentDetailView.as_view(), name="agent-detail"),
    # Independent verification; GET sessions/<id>/events (the NDJSON export) is SessionEventsView.get.
    path("keys", evidence_views.KeysView.as_view(), name="keys"),
    path("verifier/masker-verify.pyz", evidence_views.VerifierDownloadView.as_view(), name="verifier-download"),
    path(
        "sessions/<str:session_id>/events/<str:seq>/proof",
        evidence_views.SessionProofView.as_view(),
        name="session-proof",
    ),
    path(
        "sessions/<str:session_id>/consistency",
        evidence_views.SessionConsistencyView.as_view(),
        name="session-consistency",
    ),
]
