"""The lab server's configuration: a console, and nothing else.

``jupyterhub-singleuser`` in a lab exists only to put the console (jupyter-server-proxy →
websockify → SPICE) behind the hub's authentication. Everything a notebook server can do
beyond that is switched off, because on one machine the lab server runs as the hub's own
user: no kernels, no terminals, no file writes, and no proxying to arbitrary ports.
"""

c = get_config()  # noqa: F821

c.ServerApp.terminals_enabled = False
# An allow-list naming no installed kernel: no kernel can be started.
c.KernelSpecManager.allowed_kernelspecs = {"blabs-no-kernels"}
c.ServerApp.contents_manager_class = "blabs_hub.lab.readonly_contents.ReadOnlyContentsManager"
# /proxy/<port> would reach the hub's internal ports; only named entries (the console) remain.
c.ServerProxy.host_allowlist = []
c.ServerApp.jpserver_extensions = {
    "jupyter_server_proxy": True,
    "jupyter_server_terminals": False,
    "jupyterlab": False,
    "notebook": False,
    "nbclassic": False,
}
