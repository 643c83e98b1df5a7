"""configurable-http-proxy, with labs' activity taken from input only.

CHP stamps a route's ``last_activity`` on every byte it proxies, websocket frames
included, and the hub copies that onto the server every ``last_activity_interval``. An
open console tab streams screen updates all the time, so by that measure no lab would ever
be idle. A lab's activity is what its console reports: keyboard and mouse input on the
SPICE inputs channel (``blabs_hub.lab.console.activity``).
"""

from jupyterhub.proxy import ConfigurableHTTPProxy


class InputActivityProxy(ConfigurableHTTPProxy):
    """CHP, except that user routes carry no traffic-based ``last_activity``.

    The hub skips routes without it ("possibly a proxy other than CHP"), so route checks
    and everything else about CHP stay as they are.
    """

    async def get_all_routes(self):
        routes = await super().get_all_routes()
        for route in routes.values():
            if "user" in route["data"]:
                route["data"].pop("last_activity", None)
        return routes
