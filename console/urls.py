from django.urls import path

from console import views

app_name = "console"
urlpatterns = [
    path("", views.home, name="home"),
    path("partners/", views.partners, name="partners"),
    path("partners/new/", views.partner_new, name="partner_new"),
    path("tenants/", views.tenants, name="tenants"),
    path("tenants/new/", views.tenant_new, name="tenant_new"),
    path("tenants/<int:tenant_id>/", views.tenant_detail, name="tenant"),
    path("tenants/<int:tenant_id>/brand/", views.tenant_brand, name="tenant_brand"),
    path("tenants/<int:tenant_id>/domains/", views.tenant_domain_add, name="tenant_domain_add"),
    path("tenants/<int:tenant_id>/domains/<int:domain_id>/remove/", views.tenant_domain_remove, name="tenant_domain_remove"),
    path("tenants/<int:tenant_id>/domains/<int:domain_id>/primary/", views.tenant_domain_primary, name="tenant_domain_primary"),
    path("tenants/<int:tenant_id>/domains/<int:domain_id>/verify/", views.tenant_domain_verify, name="tenant_domain_verify"),
    path("tenants/<int:tenant_id>/progress/", views.tenant_progress, name="tenant_progress"),
    path("tenants/<int:tenant_id>/suspend/", views.tenant_suspend, name="tenant_suspend"),
    path("tenants/<int:tenant_id>/resume/", views.tenant_resume, name="tenant_resume"),
    path("tenants/<int:tenant_id>/archive/", views.tenant_archive, name="tenant_archive"),
    path("tenants/<int:tenant_id>/retry/", views.tenant_retry, name="tenant_retry"),
    path("tenants/<int:tenant_id>/support/", views.support_request, name="support_request"),
    path("support/<int:grant_id>/enter/", views.support_enter, name="support_enter"),
    path("support/<int:grant_id>/revoke/", views.support_revoke, name="support_revoke"),
    path("audit/", views.audit, name="audit"),
    path("templates/", views.workflow_templates, name="workflow_templates"),
    path("templates/new/", views.workflow_template_new, name="workflow_template_new"),
    path("templates/<slug:key>/", views.workflow_template_detail, name="workflow_template"),
    path("staff/", views.staff, name="staff"),
    path("staff/<int:user_id>/role/", views.staff_role, name="staff_role"),
    path("staff/<int:user_id>/deactivate/", views.staff_deactivate, name="staff_deactivate"),
]
