"""Which of the container's ports serves which request.

Each request needs its own port whose FME reports the requested interface
ID. Ports that already hold the requested AFU are taken first, so that no
port is reprogrammed needlessly. Since every port belongs to exactly one
region and holds exactly one AFU, taking those first and then any free port
of the region finds an assignment whenever one exists.
"""

from typing import NamedTuple

from fpga_crihook.deadline import TimeLimit
from fpga_crihook.devices import Port
from fpga_crihook.errors import DeviceBusyError, DeviceError
from fpga_crihook.ids import is_unhealthy
from fpga_crihook.requests import AFU_PREFIX, Request, printable

UNKNOWN_AFU = ""  # matches no request


class PortView(NamedTuple):
    """A port with what it reported when the hook looked."""

    port: Port
    interface_id: str
    afu_id: str


class Assignment(NamedTuple):
    """One request and the port that will serve it."""

    request: Request
    port: Port


def survey(ports: list[Port], busy: TimeLimit) -> list[PortView]:
    """Read every port's region and AFU; refuse unhealthy devices.

    A port whose ``afu_id`` stays busy is still planned with, as holding no
    known AFU: it is read again, and waited for, under its FME's lock.
    """
    views = []
    for port in ports:
        interface_id = port.fme.read_interface_id(busy)
        if is_unhealthy(interface_id):
            raise DeviceError(
                f"FME {port.fme.name} (for port {port.name}) reports an all-ones "
                "interface ID: the card's firmware has crashed; not touching it"
            )
        try:
            afu_id = port.read_afu_id(busy)
        except DeviceBusyError:
            # Another hook is reprogramming it: plan with "holds no known AFU"; the
            # read under the FME lock (hook.ensure_port) is the one that decides.
            afu_id = UNKNOWN_AFU
        require_healthy_afu(port, afu_id)
        views.append(PortView(port, interface_id, afu_id))
    return views


def require_healthy_afu(port: Port, afu_id: str) -> None:
    """Refuse a port that reports the all-ones AFU ID of crashed firmware."""
    if is_unhealthy(afu_id):
        raise DeviceError(
            f"port {port.name} reports an all-ones AFU ID: the card's "
            "firmware has crashed; not touching it"
        )


def assign(requests: list[Request], views: list[PortView]) -> list[Assignment]:
    """Give each request a distinct port of its region, preferring one that holds its AFU."""
    free = list(views)
    chosen: dict[int, Port] = {}
    for holds_afu_only in (True, False):
        for index, request in enumerate(requests):
            if index in chosen:
                continue
            view = _first_fit(request, free, holds_afu_only)
            if view is not None:
                free.remove(view)
                chosen[index] = view.port
    missing = [request for index, request in enumerate(requests) if index not in chosen]
    if missing:
        raise DeviceError(_no_port_message(missing[0], views))
    return [Assignment(request, chosen[index]) for index, request in enumerate(requests)]


def _first_fit(request: Request, free: list[PortView], holds_afu_only: bool) -> PortView | None:
    for view in free:
        if view.interface_id != request.interface_id:
            continue
        if not holds_afu_only or view.afu_id == request.afu_id:
            return view
    return None


def _no_port_message(request: Request, views: list[PortView]) -> str:
    present = ", ".join(f"{view.port.name}: {view.interface_id}" for view in views) or "none"
    return (
        f"no free FPGA port of region {request.interface_id} for "
        f"{printable(AFU_PREFIX + request.name)}={request.afu_id} among the container's ports "
        f"(their interface IDs: {present})"
    )
