"""Test hosts in network namespaces: one namespace per host (`cvcamp-<name>`), each with one veth
into a bridge that lives in a hub namespace of its own, on a private subnet. Nothing is added to
the machine's own network namespace; everything is torn down afterwards, and what a crashed
earlier run left behind is removed first."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass

PREFIX = "cvcamp-"
HUB = PREFIX + "hub"
SUBNET = "10.77.0"


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no `ip`,
    a container without CAP_NET_ADMIN)."""


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class Host:
    name: str
    ip: str

    @property
    def netns(self) -> str:
        return PREFIX + self.name

    def cmd(self, *args: str) -> list[str]:
        """`args` as a command run on this host."""
        return ["ip", "netns", "exec", self.netns, *args]

    def run(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return sh(*self.cmd(*args), check=check, timeout=timeout)

    def nft(self, script: str) -> None:
        subprocess.run(
            self.cmd("nft", "-f", "-"),
            input=script,
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )


def namespaces() -> list[str]:
    out = sh("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def clean() -> list[str]:
    """Kill every process left in a campaign namespace and delete the namespaces;
    returns their names."""
    found = namespaces()
    for ns in found:
        for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    for ns in found:
        sh("ip", "netns", "del", ns, check=False)
    return found


def probe() -> None:
    """Raise NetnsUnavailable unless a namespace with nftables can be made here."""
    name = PREFIX + "probe"
    try:
        sh("ip", "netns", "add", name)
        sh("ip", "netns", "exec", name, "nft", "list", "ruleset")
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise NetnsUnavailable(
            f"cannot make a network namespace with nftables: {detail.strip()}"
        ) from exc
    finally:
        sh("ip", "netns", "del", name, check=False)


def build(names: dict[str, int]) -> dict[str, Host]:
    """Make the hub with its bridge and one host per name (last octet of its address)."""
    sh("ip", "netns", "add", HUB)
    hub = Host("hub", "")
    hub.run("ip", "link", "add", "br0", "type", "bridge")
    hub.run("ip", "link", "set", "br0", "up")
    hub.run("ip", "link", "set", "lo", "up")
    hosts: dict[str, Host] = {}
    for name, octet in names.items():
        host = Host(name, f"{SUBNET}.{octet}")
        sh("ip", "netns", "add", host.netns)
        hub.run(
            "ip",
            "link",
            "add",
            f"h-{name}",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host.netns,
        )
        hub.run("ip", "link", "set", f"h-{name}", "master", "br0")
        hub.run("ip", "link", "set", f"h-{name}", "up")
        host.run("ip", "addr", "add", f"{host.ip}/24", "dev", "eth0")
        host.run("ip", "link", "set", "eth0", "up")
        host.run("ip", "link", "set", "lo", "up")
        host.nft(FILTER)
        hosts[name] = host
    return hosts


# Each host has one table of its own; faults add rules to its chains and flush them to heal.
FILTER = """
table inet cvcamp {
    chain input { type filter hook input priority 0; policy accept; }
    chain output { type filter hook output priority 0; policy accept; }
}
"""


def cut(host: Host, peers: list[Host], loss_percent: int | None = None) -> None:
    """Drop traffic between `host` and `peers` (both ways); with `loss_percent`, only that share."""
    match = f"numgen random mod 100 < {loss_percent} " if loss_percent is not None else ""
    lines = []
    for peer in peers:
        lines.append(f"add rule inet cvcamp input ip saddr {peer.ip} {match}drop")
        lines.append(f"add rule inet cvcamp output ip daddr {peer.ip} {match}drop")
    host.nft("\n".join(lines) + "\n")


def heal(host: Host) -> None:
    host.nft("flush chain inet cvcamp input\nflush chain inet cvcamp output\n")
