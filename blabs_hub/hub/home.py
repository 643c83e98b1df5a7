"""What the hub's own pages show about labs (through ``JupyterHub.template_vars``).

Each value is a callable of the current user: JupyterHub calls it for every page it
renders, so the cards and the seat counts are never stale.
"""

from dataclasses import dataclass

from . import admission
from .spawners.options import TemplateChoice, memory_label


@dataclass(frozen=True)
class LabCard:
    """One template as a student sees it on the home page."""

    slug: str
    title: str
    description: str
    cpus: int
    memory: str


def lab_cards(templates: TemplateChoice):
    """A ``template_vars`` value: called with the current user for each page rendered."""

    def cards(user) -> list[LabCard]:
        if user is None:
            return []
        return [
            LabCard(t.slug, t.title, t.description or "", t.cpus, memory_label(t.memory_mib))
            for t in templates.enabled_templates()
        ]

    return cards


@dataclass(frozen=True)
class Seats:
    """Seats on the whole hub and the user's own, as the home page states them."""

    in_use: int
    limit: int
    mine: int
    per_user_limit: int

    @property
    def free(self) -> int:
        return max(0, self.limit - self.in_use)

    @property
    def my_remaining(self) -> int:
        return max(0, min(self.per_user_limit - self.mine, self.free))


def seats_for(settings, counts: admission.Counts) -> Seats:
    """Pure: the live settings and the counted seats → what the home page shows."""
    return Seats(counts.total, settings.max_concurrent_vms, counts.user, settings.per_user_vm_limit)


def lab_seats(templates: TemplateChoice, users_source=admission.hub_users):
    """A ``template_vars`` value: the user's view of seats, counted as admission counts them."""

    def seats(user) -> Seats | None:
        if user is None:
            return None
        try:
            counts = admission.count_seats(users_source(), user.name, exclude=None)
            return seats_for(templates.catalog.settings(), counts)
        except Exception:  # the home page must render even if the catalog is unreachable
            return None

    return seats
