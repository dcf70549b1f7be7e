"""The operator commands: one module each, called from :mod:`fpga_crihook.cli`.

The hook's own line (state -> config -> requests -> ports -> plan -> program
-> verify) lives at the top of the package; nothing there imports from here.
"""
