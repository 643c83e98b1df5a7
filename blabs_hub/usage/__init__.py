"""Lab usage: sessions recorded by the hub side, read by the reports of the blabs service.

Pure parts (:mod:`.reasons`, :mod:`.report`, :mod:`.chart`) beside the thin database part
(:mod:`.record`), so the rules are unit-tested without a hub.
"""
