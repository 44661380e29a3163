"""The customer portal's API keys: a customer's people make and revoke keys for their own
account's systems – bound to the account and limited to the Experience API's scopes, so a key
never reaches further than its makers already see in the portal. The secret is shown once, in
the answer to the request that made it.

Another account's key is not found (404). Tenant admins (and support sessions) see every
account's keys here and make them for an account they choose, as on Settings → API keys.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.models import ApiKey, Role
from accounts.services import AccountError, api_key_create, api_key_revoke
from logistics.selectors import customer_accounts_all
from portal.forms import CustomerApiKeyForm

PER_PAGE = 25


def _account_scope(request: HttpRequest) -> int | None:
    """The account whose keys the viewer manages (None: a tenant admin, every account's); others are refused."""
    user: Any = request.user
    if user.role == Role.CUSTOMER and user.customer_account_id is not None and not user.support_grant_id:
        return int(user.customer_account_id)
    if user.role == Role.TENANT_ADMIN or user.support_grant_id:
        return None
    raise PermissionDenied(_("Customer API keys are managed by the customer's people and tenant admins."))


def _keys(account_id: int | None):
    keys = ApiKey.objects.filter(customer_account_id__isnull=False).select_related("created_by")
    return keys.filter(customer_account_id=account_id) if account_id is not None else keys


@never_cache
def api_keys(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    own = _account_scope(request)
    form = CustomerApiKeyForm(request.POST or None, for_account=own is not None)
    new_secret = ""
    if request.method == "POST" and form.is_valid():
        account_id = own if own is not None else form.cleaned_data["customer_account"].pk
        try:
            _key, new_secret = api_key_create(
                name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], actor=request.user, customer_account_id=account_id
            )
        except AccountError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            form = CustomerApiKeyForm(for_account=own is not None)
    page = Paginator(_keys(own), PER_PAGE).get_page(request.GET.get("page"))
    accounts = dict(customer_accounts_all().values_list("pk", "name"))
    keys: list[Any] = list(page.object_list)
    for key in keys:
        key.customer_account_name = accounts.get(key.customer_account_id, "")
    context = {"form": form, "page": page, "keys": keys, "new_secret": new_secret, "is_customer": own is not None}
    return render(request, "portal/account/api_keys.html", context, status=400 if form.errors else 200)


@require_POST
def api_key_revoke_view(request: HttpRequest, key_id: int) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    key = _keys(_account_scope(request)).filter(pk=key_id).first()
    if key is None:
        raise Http404("No such API key.")
    if key.revoked_at is None:
        api_key_revoke(key=key, actor=request.user, reason="revoked in the customer portal")
        messages.success(request, _("“%(name)s” revoked: requests with it are refused from now on.") % {"name": key.name})
    return redirect("portal:account_api_keys")
