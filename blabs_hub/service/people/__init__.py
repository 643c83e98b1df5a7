"""The service's pages and endpoints for people rather than the catalog: launch links,
the instructors' links page, usage reports, course bundles."""


def people_routes(at) -> list:
    from .bundles import bundle_routes
    from .links import link_routes
    from .usage import usage_routes

    return [*link_routes(at), *usage_routes(at), *bundle_routes(at)]
