"""Admin pages served by the blabs service (Jinja in the repo's ``templates/``)."""
