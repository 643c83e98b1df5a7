"""``/api/images`` and ``/api/uploads``: list, get and delete images; resumable uploads.

The upload handlers are thin: the protocol and its state are in :mod:`..uploads`. The
PATCH body is streamed (``@stream_request_body``): tornado hands over 64 KiB pieces, we
gather up to 1 MiB and write them from a thread, so a 40 GB upload never sits in memory and
the event loop never waits on the disk. Tornado reads no more of the body until a write
has finished, which is the backpressure.
"""

import asyncio
import logging

from sqlalchemy import select
from sqlalchemy.orm import selectinload
from tornado import web

from ...catalog import Image
from ..uploads import ImageService, UploadState
from .common import IMAGES, TEMPLATES, ApiError, APIHandler, image_json

WRITE_BATCH = 1024 * 1024
log = logging.getLogger("blabs.uploads")
UPLOAD_ID = r"([A-Za-z0-9_-]{16,64})"


class ImagesAPIHandler(APIHandler):
    def initialize(self, images: ImageService):
        self.images = images.bind(self.catalog)

    def image_or_404(self, image_id: int) -> Image:
        image = self.images.get(image_id)
        if image is None:
            raise ApiError(404, f"there is no image with id {image_id}")
        return image

    def view(self, image: Image) -> dict:
        offset = self.images.offset(image) if image.status == "uploading" else None
        return image_json(image, offset, self.images.store.chunk_size)


class ImageListHandler(ImagesAPIHandler):
    """GET: every image (admins, and instructors who pick images for templates)."""

    def get(self):
        self.require_scope(IMAGES, TEMPLATES)
        self.images.sweep_stale()
        with self.catalog.session() as db:
            rows = db.execute(
                select(Image).options(selectinload(Image.templates)).order_by(Image.name)
            ).scalars()
            images = [self.view(i) for i in rows]
        self.write_json({"images": images})


class ImageHandler(ImagesAPIHandler):
    """GET one image; DELETE it (409 while a template uses it)."""

    def get(self, image_id):
        self.require_scope(IMAGES, TEMPLATES)
        self.write_json(self.view(self.image_or_404(int(image_id))))

    async def delete(self, image_id):
        self.require_scope(IMAGES)
        await self.images.delete(int(image_id))
        self.set_status(204)
        self.finish()


class UploadCreateHandler(ImagesAPIHandler):
    """POST {name, size[, sha256]}: reserve the name, get an upload id and the chunk size."""

    def post(self):
        user = self.require_scope(IMAGES)
        image = self.images.create(self.json_body(), user["name"])
        self.set_header("Location", f"{self.service_prefix}api/uploads/{image.upload_id}")
        self.set_header("Upload-Offset", "0")
        body = self.view(self.images.get(image.id))
        body["chunk_size"] = self.images.store.chunk_size
        self.write_json(body, status=201)


@web.stream_request_body
class UploadHandler(ImagesAPIHandler):
    """HEAD/GET: the server's offset. PATCH: bytes at ``Upload-Offset``. DELETE: cancel."""

    state: UploadState | None = None
    rejection: ApiError | None = None

    async def prepare(self):
        await super().prepare()
        if self.request.method != "PATCH":
            return
        self.buffer = bytearray()
        self.overflow = False
        self.pending: asyncio.Future | None = None
        self.closed = False
        # Errors are answered after the body has been read (and dropped): a server that
        # answers early and closes leaves the proxy's pooled connection broken (a 503 for
        # the next request), and a client still sending never sees the answer.
        try:
            await self.start_patch()
        except ApiError as e:
            self.rejection = e

    async def start_patch(self):
        self.require_scope(IMAGES)
        chunk_size = self.images.store.chunk_size
        length = int(self.request.headers.get("Content-Length") or 0)
        if length > chunk_size:
            # Tornado checks this limit before reading the body: drain moderately
            # oversized chunks to answer cleanly, close on absurd ones.
            self.request.connection.set_max_body_size(min(length, 4 * chunk_size))
            raise ApiError(
                413, f"a chunk may have at most {chunk_size} bytes", field="Content-Length"
            )
        self.request.connection.set_max_body_size(chunk_size)
        image = self.images.find_upload(self.path_args[0])
        if image.status != "uploading":
            raise ApiError(409, f"this upload is already {image.status}")
        offset = self.request.headers.get("Upload-Offset")
        if offset is None or not offset.isdigit():
            raise ApiError(
                400, "send the header Upload-Offset: <bytes already sent>", "Upload-Offset"
            )
        self.state = await self.images.acquire(image)
        if int(offset) != self.state.written:
            raise ApiError(
                409,
                f"offset mismatch: the server has {self.state.written} bytes, resume there",
                field="Upload-Offset",
                offset=self.state.written,
            )

    async def data_received(self, chunk: bytes):
        if self.state is None or self.rejection is not None or self.closed:
            return
        if self.state.written + len(self.buffer) + len(chunk) > self.state.size:
            self.overflow = True
            self.buffer.clear()
            return
        if self.overflow:
            return
        self.buffer.extend(chunk)
        if len(self.buffer) >= WRITE_BATCH:
            await self.save_buffer()

    async def save_buffer(self):
        if not self.buffer:
            return
        data, self.buffer = bytes(self.buffer), bytearray()
        self.pending = asyncio.ensure_future(self.images.write(self.state, data))
        try:
            await self.pending
        finally:
            self.pending = None

    async def patch(self, upload_id):
        if self.rejection is not None:
            raise self.rejection
        if self.overflow:
            image = self.images.get(self.state.image_id)
            self.release()
            self.images.discard(image.id)
            raise ApiError(
                413,
                f"the upload is larger than its declared size of {image.declared_size} bytes: "
                "it was cancelled and removed",
                field="size",
            )
        await self.save_buffer()
        self.set_header("Upload-Offset", str(self.state.written))
        self.write_json({"offset": self.state.written, "size": self.state.size})

    def release(self):
        state, self.state = self.state, None
        if state is not None and state.lock.locked():
            state.lock.release()

    def on_finish(self):
        self.release()

    def on_connection_close(self):
        """The client went away mid-body: keep what arrived, then let the next request in."""
        if self.state is None:
            return
        self.closed = True

        upload_id = self.state.upload_id

        async def wrap_up():
            if self.pending is not None:
                await asyncio.gather(self.pending, return_exceptions=True)
            if self.state is not None and not self.overflow and self.rejection is None:
                try:
                    await self.save_buffer()
                except Exception:
                    log.exception("could not keep the last bytes of upload %s", upload_id)
            self.release()

        asyncio.ensure_future(wrap_up())

    def head(self, upload_id):
        self.require_scope(IMAGES)
        image = self.images.find_upload(upload_id)
        self.set_header("Upload-Offset", str(self.images.offset(image)))
        self.set_header("Upload-Length", str(image.declared_size))
        self.set_status(200)
        self.finish()

    def get(self, upload_id):
        self.require_scope(IMAGES)
        image = self.images.find_upload(upload_id)
        self.set_header("Upload-Offset", str(self.images.offset(image)))
        self.write_json(self.view(self.images.get(image.id)))

    async def delete(self, upload_id):
        self.require_scope(IMAGES)
        image = self.images.find_upload(upload_id)
        await self.images.delete(image.id)
        self.set_status(204)
        self.finish()


class UploadFinishHandler(ImagesAPIHandler):
    """POST [{sha256}]: vet the complete upload; 200 ready, 202 converting, 422 rejected."""

    async def post(self, upload_id):
        self.require_scope(IMAGES)
        body = self.json_body() if self.request.body.strip() else {}
        claimed = body.get("sha256")
        if claimed is not None and not (
            isinstance(claimed, str) and len(claimed) == 64 and claimed == claimed.lower()
        ):
            raise ApiError(400, "sha256 must be 64 lowercase hex digits", field="sha256")
        image, done = await self.images.finish(upload_id, claimed)
        self.write_json(self.view(image), status=200 if done else 202)


def image_routes(at, images: ImageService) -> list:
    kw = {"images": images}
    return [
        (at("api/images"), ImageListHandler, kw),
        (at(r"api/images/(\d+)"), ImageHandler, kw),
        (at("api/uploads"), UploadCreateHandler, kw),
        (at(f"api/uploads/{UPLOAD_ID}"), UploadHandler, kw),
        (at(f"api/uploads/{UPLOAD_ID}/finish"), UploadFinishHandler, kw),
    ]
