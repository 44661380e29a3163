"""People who sign in. MSP staff live in the public schema; tenant staff and customers in theirs."""

from typing import ClassVar

from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.models import AbstractBaseUser, PermissionsMixin
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_noop


class Role(models.TextChoices):
    MSP_ADMIN = "msp_admin", gettext_noop("MSP admin")
    MSP_OPERATOR = "msp_operator", gettext_noop("MSP operator")
    MSP_SUPPORT = "msp_support", gettext_noop("MSP support")
    TENANT_ADMIN = "tenant_admin", gettext_noop("Tenant admin")
    PLANNER = "planner", gettext_noop("Planner")
    DISPATCHER = "dispatcher", gettext_noop("Dispatcher")
    CUSTOMER_SERVICE = "customer_service", gettext_noop("Customer service")
    FINANCE = "finance", gettext_noop("Finance")
    CUSTOMER = "customer", gettext_noop("Customer user")


MSP_ROLES = frozenset({Role.MSP_ADMIN, Role.MSP_OPERATOR, Role.MSP_SUPPORT})
TENANT_STAFF_ROLES = frozenset({Role.TENANT_ADMIN, Role.PLANNER, Role.DISPATCHER, Role.CUSTOMER_SERVICE, Role.FINANCE})
# Roles that must sign in with a second factor.
MFA_REQUIRED_ROLES = frozenset({*MSP_ROLES, Role.TENANT_ADMIN})


class UserManager(BaseUserManager["User"]):
    def get_by_natural_key(self, username: str | None) -> "User":
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=20, choices=Role.choices)
    # A customer user sees one customer account's shipments. The account lives in logistics
    # (tenant schema only); this table exists in public too, hence no database constraint.
    customer_account_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    # Support sessions: MSP staff working in a tenant under a SupportAccessGrant.
    support_grant_id = models.BigIntegerField(null=True, blank=True)
    invited_at = models.DateTimeField(null=True, blank=True)
    # One of settings.LANGUAGES, chosen in the user menu; blank follows the browser (Accept-Language).
    language = models.CharField(max_length=10, blank=True, default="")
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: "ClassVar[list[str]]" = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.CheckConstraint(
                name="customer_user_has_account",
                condition=~models.Q(role="customer") | models.Q(customer_account_id__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def display_name(self) -> str:
        return self.full_name or self.email

    @property
    def is_msp_staff(self) -> bool:
        return self.role in MSP_ROLES

    @property
    def is_customer(self) -> bool:
        return self.role == Role.CUSTOMER

    @property
    def requires_mfa(self) -> bool:
        # Support sessions already passed MFA on the console before entering the tenant.
        return self.role in MFA_REQUIRED_ROLES and not self.support_grant_id


class ApiKey(models.Model):
    """A machine credential for the API. Only a hash of the secret is stored."""

    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=12, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    customer_account_id = models.BigIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
