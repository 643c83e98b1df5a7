"""``blabs``: the catalog from a terminal, through the same REST API as the admin pages.

    blabs [--hub-url URL] [--token TOKEN] images upload FILE [--name NAME]
    blabs images list | delete ID_OR_NAME
    blabs templates list | create --slug S --title T --image NAME [...]
    blabs templates enable S | disable S | delete S
    blabs templates prepare S | save-ready-state S | ready-state S   (instant start)
    blabs settings get | set max_concurrent_vms=10 idle_timeout_minutes=45
    blabs bundle export [--templates a,b] [-o FILE] | import FILE [--replace]

The hub URL defaults to ``$JUPYTERHUB_URL`` (else http://127.0.0.1:8000), the token to
``$JUPYTERHUB_API_TOKEN``. Each command group registers itself in :data:`COMMAND_GROUPS`,
so more groups (bundles) can be added beside these without touching the others.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from .bundle_cli import add_bundle
from .catalog_client import ApiFailure, Client


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _out(args, data, columns: list[str] | None = None) -> None:
    if args.json or columns is None:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(_table(data, columns))


# --- images -------------------------------------------------------------------------------


def images_list(client: Client, args) -> None:
    rows = client.images()
    for r in rows:
        r["size"] = _gib(r.get("virtual_size"))
        if r.get("upload"):
            r["status"] += f" ({r['upload']['offset']}/{r['upload']['size']} bytes)"
    _out(args, rows, ["id", "name", "status", "format", "source_format", "size", "uploaded_by"])


def _gib(n) -> str:
    return "" if n is None else f"{n / 1024**3:.2f} GiB"


def images_upload(client: Client, args) -> None:
    from tqdm import tqdm

    path = Path(args.file)
    name = args.name or path.stem
    size = path.stat().st_size
    with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=name) as bar:

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        image = client.upload(str(path), name, args.chunk_mb and args.chunk_mb << 20, progress)
    if image["status"] == "converting":
        print(f"converting {image['source_format']} to qcow2 …", file=sys.stderr)
    if image["status"] == "failed":
        raise ApiFailure(422, {"message": image.get("error") or "import failed"})
    _out(args, image) if args.json else print(
        f"{image['name']}: {image['status']}, {image['format']} (uploaded as "
        f"{image['source_format']}), virtual size {_gib(image['virtual_size'])}, "
        f"sha256 {image['sha256']}"
    )


def images_delete(client: Client, args) -> None:
    client.delete_image(args.image)
    print(f"deleted image {args.image}")


def add_images(sub) -> None:
    p = sub.add_parser("images", help="disk images").add_subparsers(dest="action", required=True)
    p.add_parser("list", help="list images").set_defaults(run=images_list)
    up = p.add_parser("upload", help="upload a .qcow2/.raw/.vhd/.vhdx (resumes if interrupted)")
    up.add_argument("file")
    up.add_argument("--name", help="image name (default: the file name without extension)")
    up.add_argument("--chunk-mb", type=int, default=0, help="chunk size (default: server's)")
    up.set_defaults(run=images_upload)
    rm = p.add_parser("delete", help="delete an image (by id or name)")
    rm.add_argument("image")
    rm.set_defaults(run=images_delete)


# --- templates ----------------------------------------------------------------------------

TEMPLATE_COLUMNS = ["slug", "title", "image", "cpus", "memory_mib", "firmware", "enabled"]
TEMPLATE_OPTIONS = {
    "title": str,
    "description": str,
    "image": str,
    "cpus": int,
    "memory_mib": int,
    "firmware": str,
    "disk_bus": str,
    "network": str,
    "guest_profile": str,
    "max_session_minutes": int,
}


def templates_list(client: Client, args) -> None:
    _out(args, client.templates(), TEMPLATE_COLUMNS)


def _template_body(args) -> dict:
    body = {k: getattr(args, k) for k in TEMPLATE_OPTIONS if getattr(args, k, None) is not None}
    if body.get("image", "").isdigit():
        body["image_id"] = int(body.pop("image"))
    return body


def templates_create(client: Client, args) -> None:
    body = {"slug": args.slug, **_template_body(args), "enabled": not args.disabled}
    _out(args, [client.create_template(body)], TEMPLATE_COLUMNS)


def templates_update(client: Client, args) -> None:
    _out(args, [client.update_template(args.slug, _template_body(args))], TEMPLATE_COLUMNS)


def templates_toggle(client: Client, args) -> None:
    _out(args, [client.set_enabled(args.slug, args.action == "enable")], TEMPLATE_COLUMNS)


def templates_delete(client: Client, args) -> None:
    client.delete_template(args.slug)
    print(f"deleted template {args.slug}")


def templates_ready_state(client: Client, args) -> None:
    if args.action == "prepare":
        where = client.start_preparation(args.slug)
        print(
            f"preparation lab of {args.slug} starting: {client.hub_url.rstrip('/')}{where['url']}"
        )
        return
    if args.action == "save-ready-state":
        state = client.save_ready_state(args.slug)
        preparation = state.get("preparation") or {}
        if preparation.get("stage") != "state-saved":
            raise SystemExit(f"blabs: not saved: {preparation.get('message', state)}")
    else:
        state = client.ready_state(args.slug)
    if args.json:
        _out(args, state)
    else:
        verdict = (
            "instant start ready" if state["instant_start"] else f"cold boot: {state['reason']}"
        )
        print(f"{args.slug}: {verdict}")


def add_templates(sub) -> None:
    p = sub.add_parser("templates", help="lab templates")
    p = p.add_subparsers(dest="action", required=True)
    p.add_parser("list", help="list templates").set_defaults(run=templates_list)
    for action, run in (("create", templates_create), ("update", templates_update)):
        c = p.add_parser(action, help=f"{action} a template")
        c.add_argument("--slug", required=True, help="URL-safe id used in launch links")
        for option, kind in TEMPLATE_OPTIONS.items():
            c.add_argument("--" + option.replace("_", "-"), dest=option, type=kind)
        if action == "create":
            c.add_argument("--disabled", action="store_true", help="create it disabled")
        c.set_defaults(run=run)
    for action, run in (
        ("enable", templates_toggle),
        ("disable", templates_toggle),
        ("delete", templates_delete),
        ("ready-state", templates_ready_state),
        ("prepare", templates_ready_state),
        ("save-ready-state", templates_ready_state),
    ):
        c = p.add_parser(action, help=f"{action} a template")
        c.add_argument("slug")
        c.set_defaults(run=run)


# --- settings -----------------------------------------------------------------------------


def settings_get(client: Client, args) -> None:
    s = client.settings()
    _out(args, s) if args.json else print(
        "\n".join(f"{k} = {s[k]}    # {note}" for k, note in s["notes"].items())
    )


def settings_set(client: Client, args) -> None:
    values = {}
    for pair in args.pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"blabs: expected key=value, got {pair!r}")
        try:
            values[key] = int(value)
        except ValueError:
            values[key] = value  # the server names the field and why
    client.update_settings(values)
    settings_get(client, args)


def add_settings(sub) -> None:
    p = sub.add_parser("settings", help="live limits").add_subparsers(dest="action", required=True)
    p.add_parser("get", help="show the settings").set_defaults(run=settings_get)
    s = p.add_parser("set", help="change settings: key=value ...")
    s.add_argument("pairs", nargs="+", metavar="key=value")
    s.set_defaults(run=settings_set)


COMMAND_GROUPS = [add_images, add_templates, add_settings, add_bundle]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blabs", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hub-url",
        default=os.environ.get("JUPYTERHUB_URL") or "http://127.0.0.1:8000",
        help="the hub's public URL (default: $JUPYTERHUB_URL or http://127.0.0.1:8000)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("JUPYTERHUB_API_TOKEN"),
        help="a hub API token (default: $JUPYTERHUB_API_TOKEN)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="group", required=True)
    for add in COMMAND_GROUPS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.token:
        print("blabs: give --token or set JUPYTERHUB_API_TOKEN", file=sys.stderr)
        return 2
    client = Client(args.hub_url, args.token)
    try:
        args.run(client, args)
    except ApiFailure as e:
        print(f"blabs: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"blabs: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
