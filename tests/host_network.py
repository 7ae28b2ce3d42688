"""Where a sandbox could try to get out to: this host's IPv4 addresses and a Docker
bridge's gateway, found the same way on every daemon.

A freshly started Docker 20.10 daemon (Debian's ``docker.io``) reports the default
bridge's IPAM config with ``Subnet`` only, and so does any network created with
``--subnet`` and no ``--gateway``; ``Gateway`` appears only where a daemon remembered it
from an earlier start. So the gateway is read from the bridge interface itself (the
address this host holds on it, inside the subnet), and only where the host does not hold
the bridge (a remote daemon) is it taken to be the subnet's first host, Docker's own choice.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import subprocess
from typing import Any

#: Where Docker names a bridge network's interface, when the network says so.
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"


def interface_addresses(interface: str | None = None) -> dict[str, list[str]]:
    """IPv4 addresses per interface of this host (every address, not only the first),
    from iproute2's JSON output; only ``interface`` when given (missing: empty)."""
    if shutil.which("ip") is None:
        raise RuntimeError("the `ip` command (iproute2) is needed to list this host's addresses: "
                           "apt-get install -y iproute2")
    command = ["ip", "-j", "-4", "addr", "show"] + (["dev", interface] if interface else [])
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        if interface and "does not exist" in done.stderr:
            return {}
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return {link["ifname"]: [entry["local"] for entry in link.get("addr_info", []) if entry.get("local")]
            for link in json.loads(done.stdout or "[]")}


def bridge_interface(network: dict[str, Any]) -> str:
    """The host interface of a Docker bridge network: the name its options give, else
    ``docker0`` for the default bridge and ``br-<first 12 of its id>`` for the others."""
    named = (network.get("Options") or {}).get(BRIDGE_NAME_OPTION)
    if named:
        return named
    return "docker0" if network.get("Name") == "bridge" else f"br-{network['Id'][:12]}"


def bridge_gateway(docker_client: Any, network: str = "bridge") -> str:
    """The IPv4 gateway a container on ``network`` uses: the IPAM config's ``Gateway`` when
    the daemon reports one, else :func:`interface_gateway`."""
    info = docker_client.api.inspect_network(network)
    for config in _ipv4_configs(info):
        if config.get("Gateway"):
            return config["Gateway"].split("/")[0]
    return interface_gateway(info)


def interface_gateway(network: dict[str, Any]) -> str:
    """The gateway of a bridge network (as ``inspect_network`` returns it) without its IPAM
    ``Gateway``: this host's address on the bridge interface inside the subnet, or, where
    the bridge is not on this host (a remote daemon), the subnet's first host."""
    subnet = ipaddress.ip_network(_ipv4_configs(network)[0]["Subnet"], strict=False)
    for addresses in interface_addresses(bridge_interface(network)).values():
        for address in addresses:
            if ipaddress.ip_address(address) in subnet:
                return address
    return str(subnet.network_address + 1)


def _ipv4_configs(network: dict[str, Any]) -> list[dict[str, Any]]:
    configs = [config for config in (network.get("IPAM") or {}).get("Config") or []
               if config.get("Subnet") and ipaddress.ip_network(config["Subnet"], strict=False).version == 4]
    if not configs:
        raise RuntimeError(f"Docker network {network.get('Name')!r} has no IPv4 subnet: {network.get('IPAM')}")
    return configs


def host_addresses(docker_client: Any, network: str = "bridge") -> list[str]:
    """Every IPv4 address this host holds (all interfaces, docker0 and other bridges
    included), the name resolution of its hostname, and ``network``'s gateway; loopback
    left out (inside a sandbox it is the sandbox's own). The gateway comes first."""
    gateway = bridge_gateway(docker_client, network)
    found = {gateway}
    for addresses in interface_addresses().values():
        found.update(addresses)
    try:
        found.update(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET))
    except socket.gaierror:
        pass  # a hostname that does not resolve adds nothing the interfaces did not give
    return sorted((a for a in found if not ipaddress.ip_address(a).is_loopback), key=lambda a: (a != gateway, a))


def free_subnet(candidates: tuple[str, ...]) -> ipaddress.IPv4Network:
    """The first of ``candidates`` that overlaps no route of this host: a bridge made for a
    test must not shadow the host's own network (or its gateway)."""
    routes = json.loads(subprocess.run(["ip", "-j", "route"], capture_output=True, text=True, check=True).stdout)
    used = [ipaddress.ip_network(route["dst"], strict=False) for route in routes
            if route.get("dst") not in (None, "default")]
    for candidate in candidates:
        network = ipaddress.ip_network(candidate)
        if not any(network.overlaps(other) for other in used):
            return network
    raise RuntimeError(f"none of {candidates} is free of this host's routes ({used}); add a candidate")
