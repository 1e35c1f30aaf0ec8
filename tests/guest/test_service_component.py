"""A service component written as a user writes one: `packages: [nginx]` and an entrypoint, built with
`pkg build`, run as a service of a spec and serving Debian's default page to the host through
`run --publish`; beside it a service that exits at once, reported on the console with its last lines.
One boot."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from bootkit import BOOT_TIMEOUT, distrokit
from conftest import COMPONENTS, build

NGINX_RECIPE = "packages: [nginx]\nconfig: {entrypoint: [nginx, -g, 'daemon off;']}\n"

SPEC = """kernel:
  image: "@pkg:{components}/kernel"
  cmdline: "console=ttyS0 quiet"
init:
  - "@pkg:{components}/init"
  - "@pkg:{components}/runc"
onboot:
  - name: dhcpcd
    image: "@pkg:{components}/dhcpcd"
    command: ["/sbin/dhcpcd", "--nobackground", "-f", "/dhcpcd.conf", "-1"]
services:
  - name: nginx
    image: "@pkg:{nginx}"
    capabilities: [CAP_NET_BIND_SERVICE, CAP_SETUID, CAP_SETGID, CAP_CHOWN, CAP_DAC_OVERRIDE]
  - name: crasher
    image: "@pkg:{components}/busybox"
    command: ["sh", "-c", "echo reading /etc/crasher.conf; echo crasher: no such file; exit 3"]
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_line(console: Path, line: str, running: Path) -> None:
    """The init notices a dead service within a couple of seconds: wait for its report rather than
    racing it with the power-off."""
    deadline = time.monotonic() + 60
    while line not in console.read_text(errors="replace"):
        if time.monotonic() > deadline or not running.is_file():
            return
        time.sleep(1)


def _fetch(url: str, running: Path) -> str:
    deadline = time.monotonic() + BOOT_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return str(response.read().decode())
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            if time.monotonic() > deadline or not running.is_file():
                raise AssertionError(f"{url}: {exc}") from exc
            time.sleep(2)


@pytest.mark.boot
def test_a_one_line_nginx_component_serves_its_page_and_a_dying_service_is_reported(
    shared_cache: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "nginx"
    folder.mkdir()
    (folder / "component.yml").write_text(NGINX_RECIPE)
    packed = distrokit(shared_cache, "pkg", "build", str(folder), timeout=900)
    assert packed.returncode == 0, packed.stderr
    spec = tmp_path / "web.yml"
    spec.write_text(SPEC.format(components=COMPONENTS, nginx=folder))
    built = build(spec, shared_cache, tmp_path / "out")
    state, port = tmp_path / "state", _free_port()
    started = distrokit(
        shared_cache, "run", str(built.prefix), "--detached", "--state", str(state), "--publish", f"{port}:80",
        timeout=120,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    last_lines = "the last lines it wrote (/var/log/crasher.out.log, /var/log/crasher.log):"
    try:
        page = _fetch(f"http://127.0.0.1:{port}/", state / "qemu.pid")
        _wait_for_line(state / "console.log", f"service crasher stopped; {last_lines}", state / "qemu.pid")
    finally:
        stopped = distrokit(shared_cache, "run", "--state", str(state), "--stop", timeout=120)
    console = (state / "console.log").read_text(errors="replace")
    assert "Welcome to nginx!" in page, console[-3000:]  # Debian's default page, from the postinst's copy
    assert stopped.returncode == 0, stopped.stderr
    assert f"distrokit: service crasher stopped; {last_lines}" in console
    assert "  crasher| crasher: no such file" in console
    assert "service nginx stopped" not in console  # stopped at power-off, as asked: not news
