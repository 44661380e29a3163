from django.urls import path

from workflows.api import views

urlpatterns = [
    path("library/templates", views.LibraryTemplateList.as_view(), name="api-library-templates"),
    path("library/templates/<slug:key>", views.LibraryTemplateDetail.as_view(), name="api-library-template"),
    path("definitions", views.DefinitionListCreate.as_view(), name="api-definitions"),
    path("definitions/<slug:key>", views.DefinitionDetail.as_view(), name="api-definition"),
    path("definitions/<slug:key>/versions", views.DefinitionVersionList.as_view(), name="api-definition-versions"),
    path("processes/<slug:key>/runs", views.ProcessRunStart.as_view(), name="api-process-runs"),
    path("runs", views.RunList.as_view(), name="api-runs"),
    path("runs/<int:run_id>", views.RunDetail.as_view(), name="api-run"),
]
