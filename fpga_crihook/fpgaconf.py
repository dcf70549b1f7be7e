"""OPAE's fpgaconf as programmer (not built yet: see the open issue on fpgaconf)."""

from fpga_crihook.bitstream import Bitstream
from fpga_crihook.devices import Port
from fpga_crihook.errors import SettingsError
from fpga_crihook.settings import Settings


class FpgaconfProgrammer:
    """Refuses to run until the fpgaconf programmer exists."""

    def __init__(self, settings: Settings) -> None:
        raise SettingsError("the fpgaconf programmer is not supported by this version")

    def program(self, port: Port, bitstream: Bitstream) -> None:
        """Never reached."""
