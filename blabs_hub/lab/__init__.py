"""The lab side: what runs for one lab, in a Kubernetes pod or as local processes.

``spec`` describes the machine, ``paths`` where its files live; the launcher prepares the
disk and runs QEMU, and the console (a jupyter-server-proxy entry) relays SPICE to the browser.
"""
