from django.urls import path

from workflows import approval_views, calendar_views, incident_views, views

app_name = "workflows"
urlpatterns = [
    path("", views.definitions, name="definitions"),
    path("policy/", views.policy_update, name="policy"),
    path("library/", views.library, name="library"),
    path("library/<slug:key>/", views.template_detail, name="template"),
    path("library/<slug:key>/clone/", views.clone, name="clone"),
    path("runs/", views.runs, name="runs"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/pause/", views.run_pause_view, name="run_pause"),
    path("runs/<int:run_id>/resume/", views.run_resume_view, name="run_resume"),
    path("runs/<int:run_id>/cancel/", views.run_cancel_view, name="run_cancel"),
    path("runs/<int:run_id>/retry/", views.run_retry_view, name="run_retry"),
    path("runs/<int:run_id>/restart/", views.run_restart_view, name="run_restart"),
    path("incidents/", incident_views.incidents, name="incidents"),
    path("incidents/retry/", incident_views.incidents_bulk_retry, name="incidents_retry"),
    path("approvals/", approval_views.approvals, name="approvals"),
    path("approvals/<int:approval_id>/", approval_views.approval_detail, name="approval"),
    path("approvals/link/<str:token>/", approval_views.approval_link, name="approval_link"),
    path("calendar/", calendar_views.calendar, name="calendar"),
    path("<slug:key>/edit/check/", views.definition_edit_check, name="definition_edit_check"),
    path("<slug:key>/", views.definition_detail, name="definition"),
    path("<slug:key>/edit/", views.definition_edit, name="definition_edit"),
    path("<slug:key>/start/", views.definition_start, name="definition_start"),
    path("<slug:key>/upgrade/", views.definition_upgrade, name="definition_upgrade"),
    path("<slug:key>/versions/<int:number>/submit/", views.version_submit, name="version_submit"),
    path("<slug:key>/versions/<int:number>/approve/", views.version_approve, name="version_approve"),
    path("<slug:key>/versions/<int:number>/reject/", views.version_reject, name="version_reject"),
    path("<slug:key>/versions/<int:number>/publish/", views.version_publish, name="version_publish"),
    path("<slug:key>/versions/<int:number>/rollback/", views.version_rollback, name="version_rollback"),
]
