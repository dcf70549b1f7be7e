"""Allow ``python -m fpga_crihook``."""

from fpga_crihook.launch import main

main()
