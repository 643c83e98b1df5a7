"""What the hub's own pages show about labs (through ``JupyterHub.template_vars``)."""

from dataclasses import dataclass

from .spawners.options import TemplateChoice


@dataclass(frozen=True)
class LabCard:
    """One template as a student sees it on the home page."""

    slug: str
    title: str
    description: str
    cpus: int
    memory_gib: float


def lab_cards(templates: TemplateChoice):
    """A ``template_vars`` value: called with the current user for each page rendered."""

    def cards(user) -> list[LabCard]:
        if user is None:
            return []
        return [
            LabCard(t.slug, t.title, t.description or "", t.cpus, round(t.memory_mib / 1024, 1))
            for t in templates.enabled_templates()
        ]

    return cards
