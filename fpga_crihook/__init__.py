"""fpga-crihook: an OCI prestart hook that programs Intel FPGA ports for containers."""

__version__ = "0.1.0"
