"""Put the demo guest in the catalog: an image in the store and a "Demo Linux" template.

Used by ``make demo`` and by the end-to-end tests, so that both show the whole flow
without a Windows image. The image is one we built ourselves from Debian packages, so it
is registered directly rather than through the upload path's inspection.
"""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import select

from ..catalog import Catalog, Image, Template

DEMO_IMAGE_NAME = "demo-linux.qcow2"
DEMO_TEMPLATE = {
    "slug": "demo-linux",
    "title": "Demo Linux",
    "description": "A tiny Linux with a shell on the console: try typing into it.",
    "cpus": 1,
    "memory_mib": 256,
    "firmware": "bios",
    "disk_bus": "sata",
    "network": "none",
    "guest_profile": "generic",
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seed_demo(catalog: Catalog, images_dir: Path, built_image: Path, **template) -> Template:
    """Register the demo image and template (idempotent); ``template`` overrides fields."""
    images_dir.mkdir(parents=True, exist_ok=True)
    stored = images_dir / DEMO_IMAGE_NAME
    if not stored.exists():
        tmp = stored.with_suffix(".tmp")
        shutil.copyfile(built_image, tmp)
        tmp.rename(stored)
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "-f", "qcow2", "--output=json", str(stored)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    fields = {**DEMO_TEMPLATE, **template}
    with catalog.session() as db, db.begin():
        image = db.execute(select(Image).where(Image.name == DEMO_IMAGE_NAME)).scalar_one_or_none()
        if image is None:
            image = Image(
                name=DEMO_IMAGE_NAME,
                filename=DEMO_IMAGE_NAME,
                format="qcow2",
                source_format="qcow2",
                virtual_size=info["virtual-size"],
                actual_size=stored.stat().st_size,
                sha256=sha256_of(stored),
                status="ready",
                uploaded_by="make demo",
            )
            db.add(image)
            db.flush()
        row = db.execute(
            select(Template).where(Template.slug == fields["slug"])
        ).scalar_one_or_none()
        if row is None:
            row = Template(image_id=image.id, **fields)
            db.add(row)
        return row
