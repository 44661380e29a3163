from django.urls import path

from workflows import views

app_name = "workflows"
urlpatterns = [
    path("", views.definitions, name="definitions"),
    path("policy/", views.policy_update, name="policy"),
    path("library/", views.library, name="library"),
    path("library/<slug:key>/", views.template_detail, name="template"),
    path("library/<slug:key>/clone/", views.clone, name="clone"),
    path("runs/", views.runs, name="runs"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("<slug:key>/", views.definition_detail, name="definition"),
    path("<slug:key>/edit/", views.definition_edit, name="definition_edit"),
    path("<slug:key>/upgrade/", views.definition_upgrade, name="definition_upgrade"),
    path("<slug:key>/versions/<int:number>/submit/", views.version_submit, name="version_submit"),
    path("<slug:key>/versions/<int:number>/approve/", views.version_approve, name="version_approve"),
    path("<slug:key>/versions/<int:number>/reject/", views.version_reject, name="version_reject"),
    path("<slug:key>/versions/<int:number>/publish/", views.version_publish, name="version_publish"),
    path("<slug:key>/versions/<int:number>/rollback/", views.version_rollback, name="version_rollback"),
]
