"""Baton settings: split by concern, driven by environment variables (see README's reference).

Development defaults are safe on a laptop; with DJANGO_ENV=production the unsafe ones are refused.
"""

from .api import *  # noqa: F403
from .auth import *  # noqa: F403
from .base import *  # noqa: F403
from .celery import *  # noqa: F403
from .observability import *  # noqa: F403
from .safety import refuse_unsafe_production
from .tenancy import *  # noqa: F403

refuse_unsafe_production(globals())
