"""Allow ``python -m fpga_crihook``."""

from fpga_crihook.cli import main

main()
