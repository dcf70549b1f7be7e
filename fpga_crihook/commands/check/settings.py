"""The report's first lines: the node config file, then every setting in force.

Each setting is shown with where its value came from (the command line, an
environment variable, the config file, the default), so whoever reads the
report knows what the checks below it looked at, and why.
"""

from fpga_crihook.commands.check.findings import Finding, Level
from fpga_crihook.inforce import InForce, Origin, SettingsInForce, env_text


def config_findings(in_force: SettingsInForce) -> list[Finding]:
    """The node config file, then every setting in force and where it came from."""
    config, settings = in_force.config_file, in_force.entries
    named = "" if config.named_by is Origin.DEFAULT else f" (named on the {config.named_by})"
    if config.found:
        count = sum(1 for setting in settings if setting.origin is Origin.CONFIG_FILE)
        summary = f"config file {config.path}{named}: {count} setting(s) in force from it"
    else:
        summary = f"no config file at {config.path}{named}: nothing read from one"
    return [Finding(Level.OK, summary), *(Finding(Level.OK, _setting_line(s)) for s in settings)]


def _setting_line(setting: InForce) -> str:
    origin = str(setting.origin)
    if setting.origin is Origin.ENVIRONMENT:
        origin = f"environment {setting.env_var}"
    value = "none" if setting.value is None else env_text(setting.value)
    return f"setting {setting.key} = {value} ({origin})"
