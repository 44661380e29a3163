"""`{% workspace_navigation as groups %}`: the navigation for the signed-in person on this page."""

from django import template

from portal.navigation import NavGroup, navigation_for

register = template.Library()


@register.simple_tag(takes_context=True)
def workspace_navigation(context) -> list[NavGroup]:
    request = context.get("request")
    if request is None:
        return []
    return navigation_for(request.user, request.path)
