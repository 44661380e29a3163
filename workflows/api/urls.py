from django.urls import path

from workflows.api import operations, views

urlpatterns = [
    path("library/templates", views.LibraryTemplateList.as_view(), name="api-library-templates"),
    path("library/templates/<slug:key>", views.LibraryTemplateDetail.as_view(), name="api-library-template"),
    path("definitions", views.DefinitionListCreate.as_view(), name="api-definitions"),
    path("definitions/<slug:key>", views.DefinitionDetail.as_view(), name="api-definition"),
    path("definitions/<slug:key>/versions", views.DefinitionVersionList.as_view(), name="api-definition-versions"),
    path("processes/<slug:key>/runs", views.ProcessRunStart.as_view(), name="api-process-runs"),
    path("processes/<slug:key>/runs/batch", views.ProcessRunBatchStart.as_view(), name="api-process-runs-batch"),
    path("runs", views.RunList.as_view(), name="api-runs"),
    path("runs/<int:run_id>", views.RunDetail.as_view(), name="api-run"),
    path("runs/<int:run_id>/pause", operations.RunPause.as_view(), name="api-run-pause"),
    path("runs/<int:run_id>/resume", operations.RunResume.as_view(), name="api-run-resume"),
    path("runs/<int:run_id>/cancel", operations.RunCancel.as_view(), name="api-run-cancel"),
    path("incidents", operations.IncidentList.as_view(), name="api-incidents"),
    path("incidents/retry", operations.IncidentsRetry.as_view(), name="api-incidents-retry"),
    path("incidents/<int:incident_id>", operations.IncidentDetail.as_view(), name="api-incident"),
    path("incidents/<int:incident_id>/retry", operations.IncidentRetry.as_view(), name="api-incident-retry"),
    path("incidents/<int:incident_id>/restart", operations.IncidentRestart.as_view(), name="api-incident-restart"),
    path("approvals", operations.ApprovalList.as_view(), name="api-approvals"),
    path("approvals/<int:approval_id>", operations.ApprovalDetail.as_view(), name="api-approval"),
    path("approvals/<int:approval_id>/decision", operations.ApprovalDecision.as_view(), name="api-approval-decision"),
    path("events", operations.EventIngest.as_view(), name="api-events"),
]
