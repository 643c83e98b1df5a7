"""A contents manager that refuses every write: lab servers hold no user files."""

from jupyter_server.services.contents.largefilemanager import LargeFileManager
from tornado import web


class ReadOnlyContentsManager(LargeFileManager):
    """Reads an empty folder; saving, renaming and deleting answer 403."""

    def _refuse(self, *args, **kwargs):
        raise web.HTTPError(403, "a lab server holds no files: use the VM's own disk")

    save = _refuse
    delete_file = _refuse
    rename_file = _refuse
    new = _refuse
    new_untitled = _refuse
    copy = _refuse
