"""The commands: one module each, holding its click command and options.

:mod:`fpga_crihook.cli` imports a command's module only when the command runs
(or ``--help`` lists it). The hook's own line (state -> config -> requests ->
ports -> plan -> program -> verify) lives at the top of the package; nothing
there imports from here.
"""
