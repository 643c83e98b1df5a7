"""Resumable uploads into the image store, and the import that follows them.

The protocol is tus-like: ``POST /api/uploads`` declares a name and a size and reserves
the name (an image row in status ``uploading``); ``PATCH /api/uploads/{id}`` with header
``Upload-Offset`` appends bytes at exactly that offset; ``HEAD`` tells the offset the
server has, which is where a client resumes after a dropped connection; ``POST
.../finish`` vets the file and moves it into the store. The bytes go to
``<images_dir>/.uploads/<id>.part`` (same file system, so the final move is a rename)
and are hashed (sha256) as they are written, in order, under one lock per upload.

State that matters lives on disk and in the row: the offset is the part file's length.
The running hash is only a speed-up; after a service restart it is rebuilt by reading the
part once. Uploads untouched for ``ImageStore.stale_upload_hours`` are removed.
"""

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..catalog import Catalog, Image
from ..catalog.rules import validate_upload
from ..images.config import ImageStore
from ..images.pipeline import ImageRejected, Vetted, convert, vet
from .base import ApiError

log = logging.getLogger("blabs.uploads")

LOCK_WAIT_SECONDS = 5
HASH_READ = 4 * 1024 * 1024


@dataclass
class UploadState:
    """One upload's in-memory half: the running hash of the bytes written so far."""

    upload_id: str
    image_id: int
    path: Path
    size: int
    written: int = 0
    hasher: "hashlib._Hash | None" = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ImageService:
    """Uploads, import jobs and deletions for the image store; one per service process."""

    def __init__(self, store: ImageStore, images_dir: str):
        self.store = store
        self.images_dir = Path(images_dir)
        self.incoming = self.images_dir / ".uploads"
        self.io = ThreadPoolExecutor(4, thread_name_prefix="blabs-upload")
        self.states: dict[str, UploadState] = {}
        self.jobs: dict[int, asyncio.Task] = {}
        self.catalog: Catalog | None = None
        self._last_sweep = 0.0

    # --- set-up --------------------------------------------------------------------------

    def bind(self, catalog: Catalog) -> "ImageService":
        """Attach the catalog on first use and clean up after an earlier run of the service."""
        if self.catalog is None:
            self.catalog = catalog
            self.incoming.mkdir(parents=True, exist_ok=True)
            self.recover()
        return self

    def recover(self) -> None:
        """Imports that were running when the service stopped cannot be resumed: fail them.

        Their files are removed; the row stays, failed, so the admin sees what happened.
        """
        with self.catalog.session() as db, db.begin():
            for image in db.execute(
                select(Image).where(Image.status.in_(("inspecting", "converting")))
            ).scalars():
                self._remove_files(image)
                image.status = "failed"
                image.error = "interrupted by a restart of the blabs service: upload it again"
                image.upload_id = None
                image.progress = None
        self.sweep_stale(force=True)

    def sweep_stale(self, force: bool = False) -> None:
        """Remove unfinished uploads nobody has touched for a long time (at most every 10 min)."""
        now = time.time()
        if not force and now - self._last_sweep < 600:
            return
        self._last_sweep = now
        limit = self.store.stale_upload_hours * 3600
        with self.catalog.session() as db, db.begin():
            for image in db.execute(select(Image).where(Image.status == "uploading")).scalars():
                part = self.part_path(image.upload_id)
                try:
                    touched = part.stat().st_mtime
                except (FileNotFoundError, TypeError):
                    touched = image.created_at.timestamp()
                if image.upload_id in self.states or now - touched < limit:
                    continue
                log.info("removing stale upload of %s", image.name)
                self._remove_files(image)
                db.delete(image)

    # --- paths ---------------------------------------------------------------------------

    def part_path(self, upload_id: str | None) -> Path:
        return self.incoming / f"{upload_id}.part"

    def converted_path(self, upload_id: str) -> Path:
        return self.incoming / f"{upload_id}.qcow2"

    def offset(self, image: Image) -> int:
        state = self.states.get(image.upload_id)
        if state is not None:
            return state.written
        try:
            return self.part_path(image.upload_id).stat().st_size
        except FileNotFoundError:
            return 0

    def _remove_files(self, image: Image) -> None:
        paths = []
        if image.upload_id:
            paths += [self.part_path(image.upload_id), self.converted_path(image.upload_id)]
            self.states.pop(image.upload_id, None)
        if image.filename:
            paths.append(self.images_dir / image.filename)
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # --- the protocol ---------------------------------------------------------------------

    def create(self, data: dict, user: str) -> Image:
        """Reserve the name and create the empty part file; 400/409 on a bad request."""
        from .api.common import raise_first

        with self.catalog.session() as db:
            names = set(db.execute(select(Image.name)).scalars())
        clean, errors = validate_upload(data, self.store.max_upload_size, names)
        raise_first(errors)
        upload_id = secrets.token_urlsafe(16)
        image = Image(
            name=clean["name"],
            status="uploading",
            uploaded_by=user,
            upload_id=upload_id,
            declared_size=clean["size"],
            sha256=clean.get("sha256"),  # the client's claim, until the upload is verified
        )
        try:
            with self.catalog.session() as db, db.begin():
                db.add(image)
        except IntegrityError:
            raise ApiError(
                409, f"an image named {clean['name']!r} already exists", "name"
            ) from None
        self.part_path(upload_id).touch(mode=0o600)
        return image

    def find_upload(self, upload_id: str) -> Image:
        with self.catalog.session() as db:
            image = db.execute(
                select(Image).where(Image.upload_id == upload_id)
            ).scalar_one_or_none()
        if image is None:
            raise ApiError(404, "no such upload (finished, cancelled, or never started)")
        return image

    async def acquire(self, image: Image) -> UploadState:
        """The upload's state, locked for one request; 409 if another request holds it."""
        state = self.states.get(image.upload_id)
        if state is None:
            state = UploadState(
                image.upload_id, image.id, self.part_path(image.upload_id), image.declared_size
            )
            self.states[image.upload_id] = state
        try:
            await asyncio.wait_for(state.lock.acquire(), LOCK_WAIT_SECONDS)
        except TimeoutError:
            raise ApiError(
                409, "another request is writing to this upload: retry in a moment"
            ) from None
        if state.hasher is None:
            # First request since the service started: hash what is already there.
            try:
                state.hasher, state.written = await self.run_io(_hash_file, state.path)
            except FileNotFoundError:
                state.lock.release()
                self.states.pop(image.upload_id, None)
                raise ApiError(404, "the upload's data is gone: start the upload again") from None
        return state

    async def run_io(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    async def write(self, state: UploadState, data: bytes) -> None:
        """Append ``data`` at the state's offset and hash it, in the I/O thread pool."""
        await self.run_io(_write_and_hash, state, data)

    async def finish(self, upload_id: str, claimed_sha256: str | None) -> tuple[Image, bool]:
        """Verify and import a complete upload. Returns (image, done); done is False while a
        conversion runs in the background. Rejections remove the file and the row."""
        image = self.find_upload(upload_id)
        if image.status != "uploading":
            raise ApiError(409, f"this upload is already {image.status}")
        state = await self.acquire(image)
        try:
            if state.written < state.size:
                raise ApiError(
                    409,
                    f"the upload is incomplete: {state.written} of {state.size} bytes received; "
                    f"resume at offset {state.written}, or cancel it",
                    offset=state.written,
                    size=state.size,
                )
            digest = state.hasher.hexdigest()
            claimed = claimed_sha256 or image.sha256
            if claimed and claimed != digest:
                self.discard(image.id)
                raise ApiError(
                    422,
                    f"sha256 mismatch: received data hashes to {digest}, the client said "
                    f"{claimed}; the upload was removed",
                    field="sha256",
                )
            self._update(image.id, status="inspecting", sha256=digest)
            try:
                vetted = await vet(str(state.path), self.store, self.io)
            except ImageRejected as e:
                self.discard(image.id)
                raise ApiError(
                    422, f"{e.message}; the upload was removed", field=e.field, **e.details
                ) from None
            if vetted.needs_conversion:
                self._update(
                    image.id,
                    status="converting",
                    source_format=vetted.format,
                    virtual_size=vetted.virtual_size,
                    progress=0.0,
                )
                task = asyncio.create_task(self._convert(image.id, upload_id, vetted))
                self.jobs[image.id] = task
                task.add_done_callback(lambda _t: self.jobs.pop(image.id, None))
                return self.get(image.id), False
            self._store(image.id, upload_id, state.path, vetted)
            return self.get(image.id), True
        finally:
            state.lock.release()
            if self.get(image.id) is None or self.get(image.id).status != "uploading":
                self.states.pop(upload_id, None)

    async def _convert(self, image_id: int, upload_id: str, vetted: Vetted) -> None:
        part, out = self.part_path(upload_id), self.converted_path(upload_id)
        last = 0.0

        def progress(fraction: float) -> None:
            nonlocal last
            if time.monotonic() - last >= 1 or fraction >= 1:
                last = time.monotonic()
                self._update(image_id, progress=round(fraction, 4))

        try:
            result = await convert(str(part), vetted, str(out), self.store, self.io, progress)
            self._store(image_id, upload_id, out, result, source_format=vetted.format)
            part.unlink(missing_ok=True)
        except ImageRejected as e:
            log.warning("import of image %s failed: %s", image_id, e.message)
            for path in (part, out):
                path.unlink(missing_ok=True)
            self._update(image_id, status="failed", error=e.message, upload_id=None, progress=None)
        except Exception as e:  # the job must end in a state the admin can see
            log.exception("import of image %s crashed", image_id)
            for path in (part, out):
                path.unlink(missing_ok=True)
            self._update(image_id, status="failed", error=f"internal error: {e}", upload_id=None)

    def _store(self, image_id, upload_id, src: Path, vetted: Vetted, source_format=None):
        """Move a vetted file into the store under a name of ours, read-only."""
        filename = f"{image_id:06d}-{secrets.token_hex(4)}.{vetted.stored_format}"
        final = self.images_dir / filename
        os.chmod(src, 0o444)
        os.rename(src, final)
        self._update(
            image_id,
            status="ready",
            filename=filename,
            format=vetted.stored_format,
            source_format=source_format or vetted.format,
            virtual_size=vetted.virtual_size,
            actual_size=final.stat().st_size,
            upload_id=None,
            declared_size=None,
            progress=None,
            error=None,
        )
        self.states.pop(upload_id, None)

    # --- rows ----------------------------------------------------------------------------

    def get(self, image_id: int) -> Image | None:
        with self.catalog.session() as db:
            image = db.get(Image, image_id)
            if image is not None:
                image.templates  # noqa: B018 (load while the session is open)
            return image

    def _update(self, image_id: int, **values) -> None:
        with self.catalog.session() as db, db.begin():
            image = db.get(Image, image_id)
            if image is not None:
                for key, value in values.items():
                    setattr(image, key, value)

    def discard(self, image_id: int) -> None:
        """Remove an image's files and its row, whatever state it is in."""
        with self.catalog.session() as db, db.begin():
            image = db.get(Image, image_id)
            if image is None:
                return
            self._remove_files(image)
            db.delete(image)

    async def delete(self, image_id: int) -> None:
        """Delete an image not used by any template; cancel its upload or conversion."""
        image = self.get(image_id)
        if image is None:
            raise ApiError(404, f"there is no image with id {image_id}")
        if image.templates:
            slugs = sorted(t.slug for t in image.templates)
            raise ApiError(
                409,
                f"image {image.name!r} is used by templates {', '.join(slugs)}: "
                "delete them or point them at another image first",
                templates=slugs,
            )
        job = self.jobs.get(image_id)
        if job is not None:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
        state = self.states.get(image.upload_id) if image.upload_id else None
        if state is not None and state.lock.locked():
            raise ApiError(409, "this upload is being written right now: stop it first")
        self.discard(image_id)


def _hash_file(path: Path):
    hasher = hashlib.sha256()
    written = 0
    with open(path, "rb") as f:
        while chunk := f.read(HASH_READ):
            hasher.update(chunk)
            written += len(chunk)
    return hasher, written


def _write_and_hash(state: UploadState, data: bytes) -> None:
    fd = os.open(state.path, os.O_WRONLY)
    try:
        view = memoryview(data)
        offset = state.written
        while view:
            n = os.pwrite(fd, view, offset)
            offset += n
            view = view[n:]
    finally:
        os.close(fd)
    state.hasher.update(data)
    state.written += len(data)
