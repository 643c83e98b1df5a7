"""The blabs service: a hub-managed process at ``/services/blabs/``.

It owns every catalog write (images, templates, settings), serves the admin pages and the
REST API, and does the slow work (multi-GB uploads, image conversion) away from the hub's
event loop. Browsers sign in through the hub (OAuth); API clients send a hub token.
"""
