"""``blabs bundle export|import``: course bundles from a terminal, through the REST API.

    blabs bundle export [--templates a,b] [-o FILE]     # YAML to stdout or FILE
    blabs bundle import FILE [--replace]                # all or nothing

Import failures print the service's message (with the path of a bad field, or the images
to upload first) and exit 1.
"""

import json
import sys
from pathlib import Path

from .catalog_client import ApiFailure, Client, _json_or_text


def bundle_export(client: Client, args) -> None:
    params = {"templates": args.templates} if args.templates else {}
    response = client.http.get(f"{client.base}/bundle", params=params, timeout=client.timeout)
    if response.status_code != 200:
        raise ApiFailure(response.status_code, _json_or_text(response))
    if args.output:
        Path(args.output).write_text(response.text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(response.text)


def bundle_import(client: Client, args) -> None:
    body = Path(args.file).read_bytes()
    response = client.http.post(
        f"{client.base}/bundle",
        params={"replace": "true"} if args.replace else {},
        data=body,
        headers={"Content-Type": "application/yaml"},
        timeout=client.timeout,
    )
    data = _json_or_text(response)
    if response.status_code != 200:
        for image in data.get("missing_images", []):
            print(
                f"missing image: {image['name']} sha256 {image['sha256']} "
                f"(for {', '.join(image['templates'])})",
                file=sys.stderr,
            )
        raise ApiFailure(response.status_code, data)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        created = ", ".join(data["created"]) or "-"
        print(f"created: {created}; updated: {', '.join(data['updated']) or '-'}")


def add_bundle(sub) -> None:
    p = sub.add_parser("bundle", help="course bundles (templates as one YAML file)")
    p = p.add_subparsers(dest="action", required=True)
    e = p.add_parser("export", help="export templates as YAML")
    e.add_argument("--templates", help="comma-separated slugs (default: all)")
    e.add_argument("-o", "--output", help="file to write (default: stdout)")
    e.set_defaults(run=bundle_export)
    i = p.add_parser("import", help="import a bundle (nothing is imported if anything is wrong)")
    i.add_argument("file")
    i.add_argument("--replace", action="store_true", help="update templates that exist here")
    i.set_defaults(run=bundle_import)
