"""Print the current TOTP code for the demo accounts' shared seed (development only)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.management.commands.seed_demo import DEMO_TOTP_SECRET


class Command(BaseCommand):
    help = "Print the current six-digit code for the demo TOTP secret."

    def handle(self, *args, **options):
        if settings.DJANGO_ENV == "production":
            raise CommandError("demo_totp is for development installations only.")
        import time

        from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

        self.stdout.write(format_hotp_value(hotp_value(DEMO_TOTP_SECRET, int(time.time()) // 30)))
