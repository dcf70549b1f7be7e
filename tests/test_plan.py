"""plan: each request gets its own port of its region, preferring one holding its AFU."""

from pathlib import Path

import pytest

from fpga_crihook.devices import Driver, Fme, Port
from fpga_crihook.errors import DeviceError
from fpga_crihook.plan import PortView, assign
from fpga_crihook.requests import Request

REGION = "ce48969398f05f33946d560708be108a"
OTHER_REGION = "69528db6eb31577a8c3668f9faa081f6"
AFU_X = "f7df405cbd7acf7222f144b0b93acd18"
AFU_Y = "d8424dc4a4a3c413f89e433683f9040b"
AFU_Z = "331db30c988541ea9f5b1b8ae8b5d0b5"


def _view(number: int, region: str, afu: str) -> PortView:
    fme = Fme(Driver.DFL, "dfl-fme.0", Path("/s/fme"), Path("/dev/dfl-fme.0"))
    name = f"dfl-port.{number}"
    return PortView(
        Port(Driver.DFL, name, Path(f"/s/{name}"), Path(f"/dev/{name}"), fme), region, afu
    )


def _names(requests: list[Request], views: list[PortView]) -> list[str]:
    return [assignment.port.name for assignment in assign(requests, views)]


def test_port_holding_the_afu_is_preferred_over_an_earlier_one() -> None:
    views = [_view(0, REGION, AFU_Y), _view(1, REGION, AFU_X)]
    assert _names([Request("1", REGION, AFU_X)], views) == ["dfl-port.1"]


def test_holding_ports_are_kept_even_when_requests_come_in_the_other_order() -> None:
    views = [_view(0, REGION, AFU_X), _view(1, REGION, AFU_Y)]
    requests = [Request("1", REGION, AFU_Y), Request("2", REGION, AFU_X)]
    assert _names(requests, views) == ["dfl-port.1", "dfl-port.0"]


def test_requests_get_distinct_ports() -> None:
    views = [_view(0, REGION, AFU_X), _view(1, REGION, AFU_Z)]
    requests = [Request("1", REGION, AFU_X), Request("2", REGION, AFU_X)]
    assert _names(requests, views) == ["dfl-port.0", "dfl-port.1"]


def test_region_must_match() -> None:
    views = [_view(0, OTHER_REGION, AFU_X), _view(1, REGION, AFU_Y)]
    assert _names([Request("1", REGION, AFU_X)], views) == ["dfl-port.1"]


def test_no_fitting_port_lists_the_interface_ids_present() -> None:
    views = [_view(0, OTHER_REGION, AFU_X)]
    with pytest.raises(
        DeviceError, match=f"no free FPGA port of region {REGION}.*dfl-port.0: {OTHER_REGION}"
    ):
        assign([Request("1", REGION, AFU_X)], views)


def test_more_requests_than_ports_is_an_error() -> None:
    views = [_view(0, REGION, AFU_X)]
    with pytest.raises(DeviceError, match="FPGA_AFU_2"):
        assign([Request("1", REGION, AFU_X), Request("2", REGION, AFU_X)], views)


def test_no_port_message_escapes_and_shortens_the_variable_name() -> None:
    name = "x\x1b[31m" + "y" * 200
    with pytest.raises(DeviceError) as caught:
        assign([Request(name, REGION, AFU_X)], [_view(0, OTHER_REGION, AFU_X)])
    message = str(caught.value)
    assert "\x1b" not in message
    assert "FPGA_AFU_x\\x1b[31m" in message
    assert "y" * 100 not in message
