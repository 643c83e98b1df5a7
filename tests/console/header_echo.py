"""A tiny app on a unix socket that answers with the request headers it received.

Stands in for the relay behind jupyter-server-proxy to show what the proxy forwards:
``GET /...`` returns the headers as JSON; a websocket at ``/ws`` sends them as its first
message. Usage: ``python header_echo.py SOCKET_PATH``.
"""

import asyncio
import json
import sys

from tornado import httpserver, netutil, web, websocket


class Echo(web.RequestHandler):
    def get(self, _path):
        self.write(json.dumps(dict(self.request.headers.get_all())))


class EchoSocket(websocket.WebSocketHandler):
    def open(self):
        self.write_message(json.dumps(dict(self.request.headers.get_all())))


async def main(path):
    app = web.Application([(r"/ws", EchoSocket), (r"/(.*)", Echo)])
    server = httpserver.HTTPServer(app)
    server.add_socket(netutil.bind_unix_socket(path, mode=0o600))
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
