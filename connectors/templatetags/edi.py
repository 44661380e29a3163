"""Template filters of the EDI partner card: what may be shown of the SFTP keys."""

from __future__ import annotations

from django import template

from connectors.edi_transport import ssh_host_key_label

register = template.Library()


@register.filter
def host_key_label(public_key: str) -> str:
    """A pinned host key (OpenSSH text) as its type and SHA-256 fingerprint: what `ssh-keyscan | ssh-keygen -lf -` prints."""
    return ssh_host_key_label(public_key or "")
