"""Students, instructors and admins on a real hub with the local spawner and real labs.

One hub for the module and two real labs in total: Ada starts hers from the home page and
stops it from the console; an instructor copies a launch link, Bob opens it (signing in
on the way) and lands in his console; an admin stops Bob's lab through ``/hub/api``. The
usage page, its CSV and ``/hub/metrics`` are then checked against those two sessions.
Tests run in file order and build on each other (one hub, labs are slow).
"""

import csv
import io
import time
from datetime import datetime

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from blabs_hub.catalog import Catalog
from blabs_hub.cli import main as cli_main
from tests.accounts import add_account
from tests.e2e.test_lab_in_browser import PASSWORD, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.qemu]

SLUG = "demo-linux"
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def hub(hub_factory, demo_image):
    hub = hub_factory.start(
        extra_config='c.Authenticator.admin_users = {"admin", "root"}\n',
        env={"BLABS_ACCEL": "tcg", "BLABS_ACTIVITY_INTERVAL_SECONDS": "1"},
    )
    hub.catalog = Catalog(hub.catalog_url)
    hub.seed_demo(demo_image)
    for name in ("ada", "bob", "ines"):
        hub.__dict__[f"{name}_token"] = add_account(hub, name, PASSWORD)
    assert hub.api("POST", "/groups/instructors").status_code in (201, 409)
    r = hub.api("POST", "/groups/instructors/users", json={"users": ["ines"]})
    assert r.status_code == 200, r.text
    hub.root_token = hub.create_user("root")  # an admin (admin_users)
    assert hub.api("GET", "/users/root").json()["admin"]
    return hub


def metrics(hub) -> dict[tuple[str, tuple], float]:
    text = requests.get(
        f"{hub.url}/hub/metrics", headers={"Authorization": f"token {hub.admin_token}"}, timeout=10
    ).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("blabs_"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def wait_console(page, timeout=90) -> None:
    page.wait_for_url(lambda url: "/console/" in url, timeout=timeout * 1000)
    page.wait_for_function("() => document.querySelector('#spice-screen canvas')?.width > 0")


def server(hub, user):
    return hub.api("GET", f"/users/{user}").json()["servers"].get(SLUG)


def test_student_home_start_lab_console_stop(hub, browser, artifacts):
    before = metrics(hub)
    assert before[("blabs_seats_limit", ())] == 20
    assert before[("blabs_seats_in_use", ())] == 0
    assert before[("blabs_image_store_bytes", ())] > 0

    page = browser.new_page(viewport={"width": 380, "height": 800})  # a phone-sized window
    page.set_default_timeout(30_000)
    sign_in(page, hub, "ada")
    assert "0 of 20 lab seats in use" in page.text_content("#seats-in-use")
    assert "You may start 1 more lab" in " ".join(page.text_content("#seats-mine").split())
    # Keyboard only: Tab to the Start lab button, press Enter.
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == f"start-lab-{SLUG}":
            break
    else:
        pytest.fail("Start lab is not reachable with the keyboard")
    TIMES["ada_clicked"] = time.time()
    page.keyboard.press("Enter")
    page.wait_for_url("**/spawn-pending/**")
    # The lab's stages are shown as they come, not folded away.
    page.wait_for_selector("#progress-details[open] .progress-log-event", state="visible")
    wait_console(page)
    TIMES["ada_ready"] = time.time()
    page.screenshot(path=str(artifacts / "people-console-narrow.png"))

    # The admin panel's Profile column is user_options.profile: the template.
    assert server(hub, "ada")["user_options"]["profile"] == SLUG
    during = metrics(hub)
    assert during[("blabs_labs_running", (("template", SLUG),))] == 1
    assert during[("blabs_seats_in_use", ())] == 1
    page.goto(f"{hub.url}/hub/home")
    assert "1 of 20 lab seats in use" in page.text_content("#seats-in-use")
    page.goto(f"{hub.url}/user/ada/{SLUG}/console/")
    page.wait_for_function("() => document.querySelector('#spice-screen canvas')?.width > 0")
    time.sleep(3)

    page.click("#btn-stop")
    page.wait_for_url(f"**/services/blabs/labs/{SLUG}/stop")
    page.click("#confirm-stop")
    page.wait_for_url("**/hub/home")
    TIMES["ada_stopped"] = time.time()
    page.close()

    after = metrics(hub)
    assert after.get(("blabs_labs_running", (("template", SLUG),)), 0) == 0
    assert after[("blabs_seats_in_use", ())] == 0
    assert after[("blabs_lab_starts_total", (("template", SLUG),))] == 1
    assert after[("blabs_lab_stops_total", (("reason", "user"), ("template", SLUG)))] == 1
    for stage in ("total", "preparing-disk", "booting"):
        assert after[("blabs_lab_spawn_duration_seconds_count", (("stage", stage),))] == 1


def test_instructor_link_takes_a_second_student_to_the_console(hub, browser, artifacts):
    teacher = browser.new_context()
    page = teacher.new_page()
    page.set_default_timeout(30_000)
    sign_in(page, hub, "ines")
    page.goto(f"{hub.url}/services/blabs/links")
    link = page.input_value(f"#launch-link-{SLUG}")
    assert link == f"{hub.url}/services/blabs/launch/{SLUG}"
    assert f"]({link})" in page.input_value(f"#markdown-{SLUG}")
    assert page.locator(f"#qr-{SLUG} svg").count() == 1
    page.screenshot(path=str(artifacts / "people-links.png"), full_page=True)
    badge = requests.get(f"{hub.url}/services/blabs/badge.svg", timeout=10)
    assert badge.status_code == 200 and badge.headers["Content-Type"] == "image/svg+xml"
    teacher.close()

    student = browser.new_context()
    page = student.new_page()
    page.set_default_timeout(30_000)
    TIMES["bob_clicked"] = time.time()
    page.goto(link)  # not signed in: the hub's login page first
    page.wait_for_url("**/hub/login**")
    page.fill("#username_input", "bob")
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    wait_console(page)
    TIMES["bob_ready"] = time.time()
    assert f"/user/bob/{SLUG}/console/" in page.url

    # Opening the link again reopens the running lab instead of starting another.
    page.goto(link)
    page.wait_for_url(lambda url: f"/user/bob/{SLUG}/console/" in url)

    # Unknown and disabled templates: a friendly 404 naming the problem.
    for slug, words in (("no-such-lab", "There is no lab called “no-such-lab”"),):
        response = page.goto(f"{hub.url}/services/blabs/launch/{slug}")
        assert response.status == 404 and words in page.text_content("#error-message")
    assert hub.service_api("POST", f"/templates/{SLUG}/disable").status_code == 200
    response = page.goto(link)
    assert response.status == 404 and "switched off" in page.text_content("#error-message")
    assert hub.service_api("POST", f"/templates/{SLUG}/enable").status_code == 200
    student.close()

    # An admin stops (and removes) Bob's lab through the hub's REST API.
    r = hub.api("DELETE", f"/users/bob/servers/{SLUG}", token=hub.root_token, json={"remove": True})
    assert r.status_code in (202, 204), r.text
    deadline = time.monotonic() + 30
    while server(hub, "bob") and time.monotonic() < deadline:
        time.sleep(0.2)
    TIMES["bob_stopped"] = time.time()
    assert server(hub, "bob") is None
    stops = metrics(hub)
    assert stops[("blabs_lab_stops_total", (("reason", "admin"), ("template", SLUG)))] == 1
    assert stops[("blabs_lab_starts_total", (("template", SLUG),))] == 2


def test_usage_page_shows_both_sessions_and_the_csv_matches(hub, browser, artifacts):
    sessions = hub.service_api("GET", "/usage", token=hub.ines_token).json()["sessions"]
    by_user = {s["user"]: s for s in sessions}
    assert set(by_user) == {"ada", "bob"}
    assert by_user["ada"]["reason"] == "user" and by_user["bob"]["reason"] == "admin"
    for name in ("ada", "bob"):
        s = by_user[name]
        started, stopped = (datetime.fromisoformat(s[k]) for k in ("started_at", "stopped_at"))
        assert s["minutes"] == pytest.approx((stopped - started).total_seconds() / 60, abs=0.06)
        # A session runs from the lab's start to its stop: within what the test saw.
        shortest = (TIMES[f"{name}_stopped"] - TIMES[f"{name}_ready"]) / 60
        longest = (TIMES[f"{name}_stopped"] - TIMES[f"{name}_clicked"]) / 60
        assert shortest - 0.06 <= s["minutes"] <= longest + 0.06, (name, s, shortest, longest)

    page = browser.new_page()
    page.set_default_timeout(30_000)
    sign_in(page, hub, "ines")
    page.goto(f"{hub.url}/services/blabs/usage")
    header = page.locator("#usage-table thead th").all_text_contents()
    rows = [
        r.locator("td").all_text_contents() for r in page.locator("#usage-table tbody tr").all()
    ]
    assert len(rows) == 2
    minutes = {r[0]: float(r[header.index("minutes")]) for r in rows}
    assert minutes == {n: by_user[n]["minutes"] for n in ("ada", "bob")}
    assert "peak 1" in page.text_content("#chart-heading")
    assert page.locator("#concurrency-chart path.series").count() == 1
    page.screenshot(path=str(artifacts / "people-usage.png"), full_page=True)

    csv_url = page.get_attribute("#csv-download", "href")
    body = page.request.get(f"{hub.url}{csv_url}")
    assert body.headers["content-type"].startswith("text/csv")
    parsed = list(csv.reader(io.StringIO(body.text())))
    assert parsed[0] == header and parsed[1:] == rows

    page.fill("#f-user", "bob")
    page.click("#apply-filters")
    page.wait_for_url("**/usage?user=bob**")
    assert page.locator("#usage-table tbody tr").count() == 1
    page.close()

    # Students may not read reports.
    assert hub.service_api("GET", "/usage", token=hub.ada_token).status_code == 403


def test_bundle_round_trip_to_another_hub(hub, hub_factory, demo_image, tmp_path, capsys):
    out = tmp_path / "bundle.yaml"
    url = ["--hub-url", hub.url, "--token", hub.admin_token]
    assert cli_main([*url, "bundle", "export", "-o", str(out)]) == 0
    exported = yaml.safe_load(out.read_text())
    assert [t["slug"] for t in exported["templates"]] == [SLUG]
    assert "image_id" not in out.read_text() and hub.admin_token not in out.read_text()

    other = hub_factory.start()
    other_url = ["--hub-url", other.url, "--token", other.admin_token]
    # No image there yet: the missing image is named and nothing is created.
    assert cli_main([*other_url, "bundle", "import", str(out)]) == 1
    assert "missing image: demo-linux.qcow2" in capsys.readouterr().err
    assert other.service_api("GET", "/templates").json()["templates"] == []

    other.seed_demo(demo_image, slug="local-one", title="Local one")
    assert cli_main([*other_url, "bundle", "import", str(out)]) == 0
    again = tmp_path / "again.yaml"
    assert cli_main([*other_url, "bundle", "export", "--templates", SLUG, "-o", str(again)]) == 0
    back = yaml.safe_load(again.read_text())
    assert back["templates"] == exported["templates"]
    # Importing it twice is a conflict unless --replace.
    assert cli_main([*other_url, "bundle", "import", str(out)]) == 1
    assert cli_main([*other_url, "bundle", "import", str(out), "--replace"]) == 0


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda d: d.update(colour="blue"), "colour"),
        (lambda d: d["templates"][0].update(cpus="2"), "templates[0].cpus"),
        (lambda d: d["templates"][0]["image"].update(size=3), "templates[0].image.size"),
        (lambda d: d["templates"].append(dict(d["templates"][0])), "templates[1].slug"),
    ],
)
def test_bad_bundles_are_refused_with_the_field_path(hub, change, field):
    doc = yaml.safe_load(hub.service_api("GET", "/bundle").text)
    doc["templates"][0]["slug"] = "fresh-slug"
    change(doc)
    before = hub.service_api("GET", "/templates").json()["templates"]
    r = hub.service_api("POST", "/bundle", data=yaml.safe_dump(doc))
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert hub.service_api("GET", "/templates").json()["templates"] == before
