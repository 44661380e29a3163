"""Accounts: custom user, allauth (email login, MFA), sessions and cookies, passwords."""

from config.env import env_bool, env_list, env_str

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

ACCOUNT_ADAPTER = "accounts.adapters.BatonAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = ""
# Failed-login lockout: five failures per account in 15 minutes locks it for the rest of the window.
ACCOUNT_RATE_LIMITS = {
    "login_failed": env_str("BATON_LOGIN_FAILED_LIMIT", "10/m/ip,5/15m/key"),
    "reset_password": "20/m/ip,5/m/key",
}
MFA_ADAPTER = "accounts.adapters.BatonMFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Baton"

# Sessions live in each schema's own table and cookies are host-only (no Domain attribute),
# so a session made on one tenant's host is unknown on any other.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_DOMAIN = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 12
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if env_bool("BATON_FAST_PASSWORD_HASHER"):
    # Tests only: PBKDF2 at Django's default cost makes every login take half a second.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Keys that encrypt secrets at rest (MFA TOTP seeds, later connector credentials). Not SECRET_KEY.
# Comma-separated Fernet keys: the first encrypts, all decrypt.
BATON_ENCRYPTION_KEYS = env_list("BATON_ENCRYPTION_KEYS", "ZGV2ZWxvcG1lbnQtb25seS1rZXktZG8tbm90LXVzZTA=")
DEVELOPMENT_ENCRYPTION_KEY = "ZGV2ZWxvcG1lbnQtb25seS1rZXktZG8tbm90LXVzZTA="
# Support access to a tenant can be asked for at most this long.
BATON_SUPPORT_ACCESS_MAX_HOURS = 8
