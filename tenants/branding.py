"""Brand colours: WCAG contrast checks and the CSS custom properties that pages, emails and PDFs share."""

import re
from dataclasses import dataclass

HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
WCAG_AA_NORMAL_TEXT = 4.5
PAGE_BACKGROUND = "#ffffff"


class BrandColourError(ValueError):
    """A colour is malformed or a colour pair is unreadable; the message says which and why."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(foreground: str, background: str) -> float:
    lighter, darker = sorted((relative_luminance(foreground), relative_luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@dataclass(frozen=True)
class BrandColours:
    primary: str
    on_primary: str
    accent: str


def brand_colours_validate(colours: BrandColours) -> BrandColours:
    """Refuse colour pairs that fail WCAG 2.1 AA for normal text (4.5:1).

    Primary is the header and button background with on_primary text on it; accent is used
    for links and highlights on the white page.
    """
    normalised = {}
    for field, value in (("primary_color", colours.primary), ("on_primary_color", colours.on_primary), ("accent_color", colours.accent)):
        if not HEX_COLOUR.match(value or ""):
            raise BrandColourError(field, f"{value!r} is not a colour: use six hex digits such as #1f4e79.")
        normalised[field] = value.lower()
    pairs = (
        (
            "primary_color",
            "on_primary_color",
            "text on the primary colour (header and buttons)",
            "Choose a darker primary colour, or a text colour that stands out from it.",
        ),
        ("accent_color", None, "accent links on the white page", "Choose a darker accent colour."),
    )
    for fg_field, bg_field, where, advice in pairs:
        fg = normalised[fg_field]
        bg = normalised[bg_field] if bg_field else PAGE_BACKGROUND
        ratio = contrast_ratio(fg, bg)
        if ratio < WCAG_AA_NORMAL_TEXT:
            raise BrandColourError(
                fg_field,
                f"{fg} against {bg} has a contrast of {ratio:.2f}:1 for {where}; WCAG AA needs at least {WCAG_AA_NORMAL_TEXT}:1. {advice}",
            )
    return BrandColours(normalised["primary_color"], normalised["on_primary_color"], normalised["accent_color"])


def _mix(colour: str, other: str, weight: float) -> str:
    a = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(other[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x * (1 - weight) + y * weight):02x}" for x, y in zip(a, b, strict=True))


def brand_css_variables(colours: BrandColours) -> dict[str, str]:
    """The custom properties every surface reads (`--brand-primary`, `--brand-accent`, …)."""
    return {
        "--brand-primary": colours.primary,
        "--brand-on-primary": colours.on_primary,
        "--brand-primary-soft": _mix(colours.primary, "#ffffff", 0.88),
        "--brand-primary-strong": _mix(colours.primary, "#000000", 0.2),
        "--brand-accent": colours.accent,
        "--brand-accent-soft": _mix(colours.accent, "#ffffff", 0.88),
    }
